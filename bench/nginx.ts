import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * nginx as a plain reverse proxy (baseline b): one worker, as the gateway has one event loop,
 * upstream keep-alive, no buffering (as for SSE), a fixed Authorization header injected and
 * an access log line per request, as the gateway logs one.
 */
export async function nginxConfig (dir: string, port: number, upstreamPort: number, token: string): Promise<string> {
  const temp = join(dir, 'nginx-temp')
  await mkdir(temp, { recursive: true })
  const file = join(dir, 'nginx.conf')
  await writeFile(file, `
${process.getuid?.() === 0 ? 'user root;' : ''}
daemon off;
master_process on;
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'nginx-error.log')} warn;
events { worker_connections 4096; }
http {
  access_log ${join(dir, 'nginx-access.log')};
  client_body_temp_path ${temp}/body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
  upstream gemini {
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://gemini;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer ${token}";
      proxy_set_header x-goog-api-key "";
      proxy_buffering off;
    }
  }
}
`)
  return file
}
