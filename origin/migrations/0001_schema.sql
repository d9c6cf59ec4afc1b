-- The song-comments schema. Ids of songs and users are dense integers (the
-- generator makes them 1..=N); comment ids are UUIDv7 made by the service, so
-- the same ids work on every backend.
CREATE TABLE IF NOT EXISTS songs (
    id          bigint      PRIMARY KEY,
    title       text        NOT NULL,
    artist      text        NOT NULL,
    duration_ms integer     NOT NULL CHECK (duration_ms > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS users (
    id         bigint PRIMARY KEY,
    name       text   NOT NULL,
    avatar_url text   NOT NULL,
    location   text   NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS comments (
    id         uuid        PRIMARY KEY,
    song_id    bigint      NOT NULL REFERENCES songs (id),
    user_id    bigint      NOT NULL REFERENCES users (id),
    body       text        NOT NULL CHECK (char_length(body) BETWEEN 1 AND 1000),
    track_ms   integer     NOT NULL CHECK (track_ms >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Serves the comments page and the feed's comment half in keyset order
-- (song_id, track_ms, id) from the index alone: every column the page returns
-- is INCLUDEd, so PostgreSQL answers with an index-only scan.
CREATE INDEX IF NOT EXISTS comments_by_song_position
    ON comments (song_id, track_ms, id)
    INCLUDE (user_id, body, created_at, updated_at);
