import { expect, test } from 'vitest'
import { parsePrometheusText } from '../../helpers/metrics.js'

// The test parser must be able to fail, or the metric tests prove nothing.
const ok = '# HELP h_ms x\n# TYPE h_ms histogram\nh_ms_bucket{a="1",le="1"} 1\nh_ms_bucket{a="1",le="+Inf"} 2\nh_ms_sum{a="1"} 3\nh_ms_count{a="1"} 2\n'

test('a well-formed labelled histogram parses into one series with its buckets', () => {
  expect(parsePrometheusText(ok)).toEqual([{ name: 'h_ms', help: 'x', type: 'HISTOGRAM', metrics: [{ labels: { a: '1' }, buckets: { '1': '1', '+Inf': '2' }, sum: '3', count: '2' }] }])
})

test.each([
  ['non-cumulative buckets', ok.replace('le="+Inf"} 2', 'le="+Inf"} 0').replace('_count{a="1"} 2', '_count{a="1"} 0')],
  ['+Inf bucket != count', ok.replace('_count{a="1"} 2', '_count{a="1"} 5')],
  ['unquoted label value', 'x_total{a=1} 1\n'],
  ['bad metric name', '# TYPE 1x counter\n1x 1\n'],
  ['bad value', 'x_total 1,5\n'],
  ['two TYPE lines', '# TYPE x counter\n# TYPE x gauge\nx 1\n'],
])('rejects %s', (_what, text) => {
  expect(() => parsePrometheusText(text)).toThrow()
})
