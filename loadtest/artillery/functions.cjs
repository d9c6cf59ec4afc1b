// Helpers for the Artillery scenarios: Zipf-like song ids (exponent 1: the
// id is N^u for uniform u, so song 1 is the hottest and the tail is long, the
// same skew as the Rust generator's default) and a track position.
'use strict';

function zipfSong(songs) {
  return Math.max(1, Math.min(songs, Math.floor(Math.pow(songs + 1, Math.random()))));
}

function pickSong(context, events, done) {
  const songs = Number(process.env.SONGS || context.vars.songs || 10000);
  context.vars.songId = zipfSong(songs);
  context.vars.trackMs = Math.floor(Math.random() * 30000);
  return done();
}

module.exports = { pickSong, zipfSong };
