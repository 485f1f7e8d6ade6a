import t from 'tap'
import { Calendar } from '../src/policy/periods.js'
import { PriceTable } from '../src/policy/prices.js'

t.test('days and months start at midnight in the policy\'s time zone, summer time included', async (t) => {
  const berlin = new Calendar('Europe/Berlin')
  // 23:30 UTC on 28 March is already 29 March in Berlin (a 23-hour day: clocks go forward at 02:00).
  const day = berlin.day(Date.parse('2026-03-28T23:30:00Z'))
  t.same(day, { id: '2026-03-29', endsAt: Date.parse('2026-03-29T22:00:00Z') })
  t.same(berlin.month(Date.parse('2026-12-31T23:30:00Z')), { id: '2027-01', endsAt: Date.parse('2027-01-31T23:00:00Z') })
  const utc = new Calendar('UTC')
  t.same(utc.day(Date.parse('2026-12-01T10:00:00Z')), { id: '2026-12-01', endsAt: Date.parse('2026-12-02T00:00:00Z') })
  t.same(utc.daysOfMonthSoFar(Date.parse('2026-12-03T10:00:00Z')), ['2026-12-01', '2026-12-02', '2026-12-03'])
})

t.test('prices: the row in force on the day, by the longest listed name; retired models keep their last price', async (t) => {
  const table = new PriceTable({ 'gemini-x': [{ from: '2026-01-01', input: 1, output: 2 }, { from: '2027-01-01', input: 3, output: 4, cached_input: 1 }] })
  t.same(table.priceOf('gemini-x-001', new Date('2026-06-01')), { input: 1000, output: 2000, cachedInput: 1000, audioInput: 1000, cachedAudioInput: 1000 }, 'nano-USD per token; cached and audio at the input price when unlisted')
  t.same(table.priceOf('gemini-x-001', new Date('2027-02-01')), { input: 3000, output: 4000, cachedInput: 1000, audioInput: 3000, cachedAudioInput: 1000 })
  t.equal(table.priceOf('gemini-3.8-flash', new Date('2026-12-15')).output, 3750, 'the shipped launch price')
  t.equal(table.priceOf('gemini-3.8-flash', new Date('2027-01-15')).output, 7500, 'and its later row')
  t.equal(table.priceOf('gemini-2.5-flash', new Date('2026-12-15')).output, 2500, 'retired 2026-12-01: its last price')
  t.equal(table.priceOf('unlisted-model').output, 120_000, 'an unlisted model costs like the dearest listed one (Nano Banana Pro\'s images)')
  t.equal(table.costOf('gemini-x', { prompt: 1000, cached: 400, output: 100, thinking: 50, audio: 0, cachedAudio: 0 }, new Date('2027-02-01')), 600 * 3000 + 400 * 1000 + 150 * 4000)
})

t.test('prices: a prompt\'s audio at the audio price, fresh and cached; a reservation\'s input price blends them, rounded up', async (t) => {
  const table = new PriceTable({ 'gemini-a': [{ from: '2026-01-01', input: 1, output: 1, cached_input: 0.1, audio_input: 2, cached_audio_input: 0.2 }] })
  const price = table.priceOf('gemini-a')
  t.same(price, { input: 1000, output: 1000, cachedInput: 100, audioInput: 2000, cachedAudioInput: 200 })
  // 1,000 prompt tokens: 600 audio, of which 300 cached; 500 cached in all.
  t.equal(table.costOf('gemini-a', { prompt: 1000, cached: 500, output: 10, thinking: 0, audio: 600, cachedAudio: 300 }), 200 * 1000 + 300 * 2000 + 200 * 100 + 300 * 200 + 10 * 1000)
  // Counts that do not add up (more audio than prompt) never charge a token twice.
  t.equal(table.costOf('gemini-a', { prompt: 100, cached: 0, output: 0, thinking: 0, audio: 5000, cachedAudio: 9000 }), 100 * 2000)
  t.equal(table.inputPriceOf(price, 3, 1), Math.ceil((2 * 1000 + 2000) / 3))
  t.equal(table.inputPriceOf(price, 10, 0), 1000, 'no audio: the text price')
  t.equal(table.inputPriceOf(price, 0, 5), 1000, 'an empty prompt')
  const audioOnly = new PriceTable({ 'gemini-b': [{ from: '2026-01-01', input: 1, output: 1, audio_input: 3 }] })
  t.equal(audioOnly.priceOf('gemini-b').cachedAudioInput, 3000, 'cached audio at the audio price when unlisted')
  t.equal(table.priceOf('unlisted-model').audioInput, 3000, 'an unlisted model\'s audio at the dearest listed audio price (gemini-3.8-flash\'s from 2027)')
})
