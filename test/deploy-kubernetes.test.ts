import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Deployment } from 'kubernetes-models/apps/v1'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { loadConfig } from '../src/config/load.js'
import { SETTINGS } from '../src/config/schema.js'

// The manifests are checked offline: the Kubernetes OpenAPI schemas ship inside the
// kubernetes-models package, so no cluster and no network are needed.

const DIR = fileURLToPath(new URL('../deploy/kubernetes/', import.meta.url))

interface Manifest { apiVersion: string, kind: string, metadata: { name: string }, [field: string]: unknown }

/** The model (with its JSON-schema validator) of every kind the manifests may use. */
const MODELS: Record<string, new (data: never) => { validate: () => void }> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
}

function load (file: string): Manifest[] {
  return parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((document) => {
    if (document.errors.length > 0) throw new Error(`${file}: ${document.errors.map(String).join('; ')}`)
    return document.toJS() as Manifest
  })
}

const files = readdirSync(DIR).filter((file) => file.endsWith('.yaml') && file !== 'kustomization.yaml')
const manifests = files.flatMap((file) => load(file).map((manifest) => ({ file, manifest })))
const find = <T>(kind: string): T => manifests.find(({ manifest }) => manifest.kind === kind)!.manifest as T

t.test('every manifest is valid against the Kubernetes schema of its kind', async (t) => {
  t.ok(manifests.length >= 6, `${manifests.length} manifests`)
  for (const { file, manifest } of manifests) {
    const Model = MODELS[`${manifest.apiVersion}/${manifest.kind}`]
    if (Model === undefined) {
      t.fail(`${file}: no schema for ${manifest.apiVersion} ${manifest.kind}`)
      continue
    }
    t.doesNotThrow(() => { new Model(manifest as never).validate() }, `${file}: ${manifest.kind} ${manifest.metadata.name}`)
  }
})

t.test('the validator refuses a broken manifest (so the test above means something)', async (t) => {
  const deployment = structuredClone(find<Manifest>('Deployment')) as unknown as { spec: { replicas: unknown } }
  deployment.spec.replicas = 'two'
  t.throws(() => { new Deployment(deployment as never).validate() })
})

t.test('kustomization.yaml lists every manifest but the secret example', async (t) => {
  const [kustomization] = load('kustomization.yaml') as unknown as Array<{ resources: string[] }>
  t.same([...kustomization!.resources].sort(), files.filter((file) => file !== 'secret.example.yaml').sort())
})

interface Container {
  env: Array<{ name: string, value: string }>
  ports: Array<{ name: string, containerPort: number }>
  readinessProbe: { httpGet: { path: string } }
  livenessProbe: { httpGet: { path: string } }
  lifecycle: { preStop: { exec: { command: string[] } } }
  volumeMounts: Array<{ name: string, mountPath: string }>
  resources: { requests: Record<string, string> }
}
interface PodSpec { terminationGracePeriodSeconds: number, containers: Container[], volumes: Array<{ name: string, secret: { secretName: string } }> }

t.test('the Deployment: probes, drain timing, secrets as files, and settings the gateway accepts', async (t) => {
  const deployment = find<{ spec: { selector: { matchLabels: Record<string, string> }, template: { metadata: { labels: Record<string, string> }, spec: PodSpec } } }>('Deployment')
  const pod = deployment.spec.template.spec
  const [container] = pod.containers
  const config = find<{ data: Record<string, string> }>('ConfigMap').data
  t.equal(container!.readinessProbe.httpGet.path, '/readyz')
  t.equal(container!.livenessProbe.httpGet.path, '/healthz')
  t.ok(container!.resources.requests.cpu !== undefined && container!.resources.requests.memory !== undefined, 'resource requests are set')
  t.equal(container!.ports[0]!.containerPort, Number(config.PORT), 'the container port is PORT')

  const [sleep, seconds] = container!.lifecycle.preStop.exec.command
  t.equal(sleep, 'sleep')
  const drain = Number(config.SHUTDOWN_DRAIN_SECONDS)
  t.ok(pod.terminationGracePeriodSeconds > Number(seconds) + drain,
    `terminationGracePeriodSeconds (${pod.terminationGracePeriodSeconds}) > preStop (${seconds}) + SHUTDOWN_DRAIN_SECONDS (${drain})`)

  const known = new Set(SETTINGS.flatMap((setting) => setting.secret === true ? [setting.env, `${setting.env}_FILE`] : [setting.env]))
  for (const name of [...Object.keys(config), ...container!.env.map((variable) => variable.name)]) t.ok(known.has(name), `${name} is a setting`)
  for (const setting of SETTINGS.filter((setting) => setting.secret === true)) t.notOk(setting.env in config, `${setting.env} is not in the ConfigMap`)

  const mount = container!.volumeMounts.find((volume) => pod.volumes.find((v) => v.name === volume.name)?.secret !== undefined)!
  const secretKeys = Object.keys(find<{ stringData: Record<string, string> }>('Secret').stringData)
  const dir = t.testdir()
  const values: Record<string, string> = {
    'oidc-client-secret': randomBytes(16).toString('hex'),
    'cookie-secrets': randomBytes(48).toString('base64'),
    'token-encryption-keys': randomBytes(32).toString('base64'),
    'redis-url': 'redis://:password@redis:6379',
  }
  const env: Record<string, string> = { ...config }
  for (const { name, value } of container!.env) {
    t.ok(name.endsWith('_FILE') && value.startsWith(`${mount.mountPath}/`), `${name} reads a file of the secret volume`)
    const key = value.slice(mount.mountPath.length + 1)
    t.ok(secretKeys.includes(key), `the Secret example has ${key}`)
    writeFileSync(join(dir, key), `${values[key]}\n`)
    env[name] = join(dir, key)
  }
  const loaded = loadConfig({ env, cwd: dir })
  t.equal(loaded.shutdownDrainSeconds, drain, 'the pod\'s environment is a valid configuration')
  t.equal(loaded.redis.url, values['redis-url'], 'with its secrets read from the files')

  const selector = deployment.spec.selector.matchLabels
  t.match(deployment.spec.template.metadata.labels, selector, 'the pods carry the selector labels')
  t.same(find<{ spec: { selector: Record<string, string> } }>('Service').spec.selector, selector, 'the Service selects them')
  t.same(find<{ spec: { selector: { matchLabels: Record<string, string> } } }>('PodDisruptionBudget').spec.selector.matchLabels, selector, 'so does the PDB')
  t.equal(find<{ spec: { scaleTargetRef: { name: string } } }>('HorizontalPodAutoscaler').spec.scaleTargetRef.name, 'gemgate', 'the HPA scales the Deployment')
})
