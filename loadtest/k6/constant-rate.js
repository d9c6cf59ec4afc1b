// A fixed arrival rate (k6's constant-arrival-rate) with the read-heavy mix:
// the original study's loads (e.g. RATE=400 for its three-instance run).
//   k6 run -e TARGET=http://127.0.0.1:8000 -e TOKEN=... -e RATE=400 -e DURATION=60s loadtest/k6/constant-rate.js
import defaultFunction from './read-heavy.js';

export const options = {
  scenarios: {
    constant: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 400),
      timeUnit: '1s',
      duration: __ENV.DURATION || '60s',
      preAllocatedVUs: 200,
      maxVUs: 2000,
    },
  },
  thresholds: {
    http_req_duration: ['p(99)<100'],
    http_req_failed: ['rate<0.001'],
    dropped_iterations: ['count<1'],
  },
};

export default defaultFunction;
