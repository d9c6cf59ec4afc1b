// The read-heavy scenario for k6: about 90 % reads (song, comments page,
// feed) over Zipf-hot songs, 10 % writes with a token from __ENV.TOKEN, an
// open-model ramping arrival rate, and thresholds like loadtest's.
//   k6 run -e TARGET=http://127.0.0.1:8000 -e TOKEN=$(loadtest token --user 1) loadtest/k6/read-heavy.js
import http from 'k6/http';
import { check } from 'k6';

const TARGET = __ENV.TARGET || 'http://127.0.0.1:8000';
const TOKEN = __ENV.TOKEN || '';
const SONGS = Number(__ENV.SONGS || 10000);

export const options = {
  scenarios: {
    read_heavy: {
      executor: 'ramping-arrival-rate',
      startRate: 20,
      timeUnit: '1s',
      preAllocatedVUs: 100,
      maxVUs: 1000,
      stages: [
        { target: 20, duration: '10s' },
        { target: 200, duration: '30s' },
        { target: 200, duration: '60s' },
      ],
    },
  },
  thresholds: {
    http_req_duration: ['p(99)<100'],
    http_req_failed: ['rate<0.001'],
    dropped_iterations: ['count<1'],
  },
};

// Zipf-like with exponent 1: N^u for uniform u (the same skew as Artillery's helper).
export function zipfSong(songs) {
  return Math.max(1, Math.min(songs, Math.floor(Math.pow(songs + 1, Math.random()))));
}

const jsonWithToken = {
  headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TOKEN}` },
};

function postComment(song, body) {
  const response = http.post(
    `${TARGET}/api/songs/${song}/comments`,
    JSON.stringify({ body, track_ms: Math.floor(Math.random() * 30000) }),
    Object.assign({ tags: { name: 'post_comment' } }, jsonWithToken),
  );
  check(response, { 'comment created': (r) => r.status === 201 });
  return response.status === 201 ? response.json('id') : null;
}

export default function () {
  const song = zipfSong(SONGS);
  const pick = Math.random() * 100;
  if (pick < 25) {
    check(http.get(`${TARGET}/api/songs/${song}`, { tags: { name: 'song' } }), { ok: (r) => r.status === 200 });
  } else if (pick < 65) {
    check(http.get(`${TARGET}/api/songs/${song}/comments`, { tags: { name: 'comments' } }), { ok: (r) => r.status === 200 });
  } else if (pick < 90) {
    check(http.get(`${TARGET}/api/songs/${song}/feed`, { tags: { name: 'feed' } }), { ok: (r) => r.status === 200 });
  } else if (pick < 98) {
    postComment(song, 'k6 comment');
  } else if (pick < 99) {
    const id = postComment(song, 'k6 comment to edit');
    if (id) {
      http.patch(`${TARGET}/api/comments/${id}`, JSON.stringify({ body: 'edited by k6' }),
        Object.assign({ tags: { name: 'patch_comment' } }, jsonWithToken));
    }
  } else {
    const id = postComment(song, 'k6 comment to delete');
    if (id) {
      http.del(`${TARGET}/api/comments/${id}`, null, Object.assign({ tags: { name: 'delete_comment' } }, jsonWithToken));
    }
  }
}
