//! The deterministic data set: every row is a pure function of (seed, table, row
//! number), so any chunk can be generated on its own, in any order, on any
//! machine, and the same seed always gives the same rows and the same ids.

use chrono::{DateTime, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Zipf};
use uuid::Uuid;

use super::words;
use origin::domain::{Comment, Song, SongId, User, UserId};

/// Songs are released between these instants; comments are made after their
/// song's release and before the end. Fixed so that data never depends on the clock.
const RELEASES_START_MICROS: i64 = 1_451_606_400_000_000; // 2016-01-01T00:00:00Z
const DATA_END_MICROS: i64 = 1_780_272_000_000_000; // 2026-06-01T00:00:00Z

pub const MIN_DURATION_MS: i32 = 60_000;
pub const MAX_DURATION_MS: i32 = 600_000;

/// Each row gets its own window of the ChaCha key stream, this many 32-bit
/// words long, so that row `n` never depends on how many draws row `n - 1` made.
const WORDS_PER_ROW_LOG2: u32 = 8;

#[derive(Clone, Copy)]
enum Table {
    Songs = 1,
    Users = 2,
    Comments = 3,
}

/// The sizes and shape of a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dataset {
    pub seed: u64,
    pub songs: u64,
    pub users: u64,
    pub comments: u64,
    /// Exponent of the Zipf law of song popularity: 0 is uniform; 0.5 gives the
    /// most popular song a few thousand comments at 10 comments per song.
    pub zipf_exponent: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("a data set needs at least one song and one user")]
    Empty,
    #[error("the Zipf exponent must be a finite number >= 0, got {0}")]
    BadExponent(f64),
}

/// Makes rows of one data set. Cheap to create; one per loading task.
#[derive(Clone)]
pub struct Generator {
    dataset: Dataset,
    popularity: Zipf<f64>,
    /// Scatters popularity ranks over song ids, so the popular songs are not
    /// simply ids 1, 2, 3: a bijection `rank -> (rank * stride + offset) mod n`.
    stride: u64,
    offset: u64,
    row_rng: ChaCha8Rng,
    song_rng: ChaCha8Rng,
}

impl Generator {
    pub fn new(dataset: Dataset) -> Result<Self, DatasetError> {
        if dataset.songs == 0 || dataset.users == 0 {
            return Err(DatasetError::Empty);
        }
        if !dataset.zipf_exponent.is_finite() || dataset.zipf_exponent < 0.0 {
            return Err(DatasetError::BadExponent(dataset.zipf_exponent));
        }
        let popularity = Zipf::new(dataset.songs as f64, dataset.zipf_exponent)
            .map_err(|_| DatasetError::BadExponent(dataset.zipf_exponent))?;
        let n = dataset.songs;
        // The golden-ratio point of n, moved up to the next number coprime with n.
        let mut stride = ((n as f64) * 0.618_033_988_75) as u64 | 1;
        while gcd(stride, n) != 1 {
            stride += 1;
        }
        let offset = ChaCha8Rng::seed_from_u64(dataset.seed).random_range(0..n);
        let rng = ChaCha8Rng::seed_from_u64(dataset.seed);
        Ok(Self {
            dataset,
            popularity,
            stride,
            offset,
            row_rng: rng.clone(),
            song_rng: rng,
        })
    }

    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    fn position(rng: &mut ChaCha8Rng, table: Table, row: u64) {
        rng.set_stream(table as u64);
        rng.set_word_pos(u128::from(row) << WORDS_PER_ROW_LOG2);
    }

    /// The song's duration and release time: the first draws of its row, which
    /// comments need too (a comment sits within its song and after its release).
    fn song_shape(rng: &mut ChaCha8Rng, id: i64) -> (i32, i64) {
        Self::position(rng, Table::Songs, id as u64);
        let duration_ms = rng.random_range(MIN_DURATION_MS..=MAX_DURATION_MS);
        let released = rng.random_range(RELEASES_START_MICROS..DATA_END_MICROS - 86_400_000_000);
        (duration_ms, released)
    }

    /// A song drawn by the data set's popularity law: the songs this returns
    /// most often are the ones with the most comments (the query benchmark's
    /// Zipf draw).
    pub fn popular_song<R: Rng + ?Sized>(&self, rng: &mut R) -> i64 {
        Self::song_by_popularity(
            &self.popularity,
            self.stride,
            self.offset,
            self.dataset.songs,
            rng,
        )
    }

    fn song_by_popularity<R: Rng + ?Sized>(
        popularity: &Zipf<f64>,
        stride: u64,
        offset: u64,
        songs: u64,
        rng: &mut R,
    ) -> i64 {
        let rank = (popularity.sample(rng) as u64).clamp(1, songs);
        ((u128::from(rank - 1) * u128::from(stride) + u128::from(offset)) % u128::from(songs))
            as i64
            + 1
    }

    /// Song `id`, for ids 1..=songs.
    pub fn song(&mut self, id: i64) -> Song {
        let rng = &mut self.row_rng;
        let (duration_ms, released) = Self::song_shape(rng, id);
        let mut title = format!(
            "{} {}",
            pick(rng, words::TITLE_ADJECTIVES),
            pick(rng, words::TITLE_NOUNS)
        );
        match rng.random_range(0..10) {
            0 => title.push_str(" (Remix)"),
            1 => title.push_str(" (Live)"),
            2 => title.push_str(&format!(" {}", rng.random_range(2..10))),
            _ => {}
        }
        let artist = if rng.random_bool(0.4) {
            format!("The {}", pick(rng, words::BAND_NOUNS))
        } else {
            format!(
                "{} {}",
                pick(rng, words::FIRST_NAMES),
                pick(rng, words::LAST_NAMES)
            )
        };
        Song {
            id: SongId::new(id).expect("song ids start at 1"),
            title,
            artist,
            duration_ms,
            created_at: micros_to_time(released),
        }
    }

    /// User `id`, for ids 1..=users.
    pub fn user(&mut self, id: i64) -> User {
        let rng = &mut self.row_rng;
        Self::position(rng, Table::Users, id as u64);
        let first = pick(rng, words::FIRST_NAMES);
        let last = pick(rng, words::LAST_NAMES);
        let name = if rng.random_bool(0.3) {
            format!("{}{}", first.to_lowercase(), rng.random_range(1..10_000))
        } else {
            format!("{first} {last}")
        };
        let avatar_url = format!(
            "https://avatars.example.com/{id}/{:016x}.jpg",
            rng.random::<u64>()
        );
        let location = if rng.random_bool(0.15) {
            String::new()
        } else {
            pick(rng, words::CITIES).to_owned()
        };
        User {
            id: UserId::new(id).expect("user ids start at 1"),
            name,
            avatar_url,
            location,
        }
    }

    /// Comment number `index`, for indexes 0..comments.
    pub fn comment(&mut self, index: u64) -> Comment {
        let rng = &mut self.row_rng;
        Self::position(rng, Table::Comments, index);
        let song_id = Self::song_by_popularity(
            &self.popularity,
            self.stride,
            self.offset,
            self.dataset.songs,
            rng,
        );
        let (duration_ms, released) = Self::song_shape(&mut self.song_rng, song_id);
        let user_id = rng.random_range(1..=self.dataset.users as i64);
        let track_ms = rng.random_range(0..=duration_ms);
        let created = rng.random_range(released..DATA_END_MICROS);
        let mut random_bits = [0u8; 10];
        rng.fill(&mut random_bits);
        let id = uuid::Builder::from_unix_timestamp_millis((created / 1000) as u64, &random_bits)
            .into_uuid();
        let body = comment_body(rng, track_ms);
        let created_at = micros_to_time(created);
        Comment {
            id,
            song_id: SongId::new(song_id).expect("song ids start at 1"),
            user_id: UserId::new(user_id).expect("user ids start at 1"),
            body,
            track_ms,
            created_at,
            updated_at: created_at,
        }
    }
}

fn comment_body(rng: &mut ChaCha8Rng, track_ms: i32) -> String {
    let mut body = String::with_capacity(64);
    if rng.random_bool(0.25) {
        let seconds = track_ms / 1000;
        body.push_str(&format!("{}:{:02} ", seconds / 60, seconds % 60));
    }
    body.push_str(pick(rng, words::COMMENT_OPENERS));
    body.push(' ');
    body.push_str(pick(rng, words::COMMENT_SUBJECTS));
    body.push(' ');
    body.push_str(pick(rng, words::COMMENT_VERDICTS));
    body.push_str(pick(rng, words::COMMENT_TAILS));
    body
}

fn pick<'a>(rng: &mut ChaCha8Rng, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

fn micros_to_time(micros: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(micros)
        .single()
        .expect("generated instants are in range")
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The id a comment has in any data set: exposed so tests can check ids are v7.
pub fn is_v7(id: Uuid) -> bool {
    id.get_version_num() == 7
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(seed: u64) -> Dataset {
        Dataset {
            seed,
            songs: 1_000,
            users: 500,
            comments: 20_000,
            zipf_exponent: 0.5,
        }
    }

    #[test]
    fn same_seed_same_rows_in_any_order() {
        let mut a = Generator::new(dataset(7)).unwrap();
        let mut b = Generator::new(dataset(7)).unwrap();
        let forward: Vec<_> = (0..200).map(|i| a.comment(i)).collect();
        let backward: Vec<_> = (0..200).rev().map(|i| b.comment(i)).collect();
        assert!(forward.iter().eq(backward.iter().rev()));
        assert_eq!(a.song(17), b.song(17));
        assert_eq!(a.user(3), b.user(3));
    }

    #[test]
    fn different_seed_different_rows() {
        let mut a = Generator::new(dataset(7)).unwrap();
        let mut b = Generator::new(dataset(8)).unwrap();
        assert_ne!(a.comment(0), b.comment(0));
        assert_ne!(a.song(1), b.song(1));
    }

    #[test]
    fn comments_fit_their_song_and_users() {
        let mut generator = Generator::new(dataset(1)).unwrap();
        for index in 0..5_000 {
            let comment = generator.comment(index);
            let song = generator.song(comment.song_id.get());
            assert!((1..=1_000).contains(&comment.song_id.get()));
            assert!((1..=500).contains(&comment.user_id.get()));
            assert!(
                (0..=song.duration_ms).contains(&comment.track_ms),
                "{comment:?} in {song:?}"
            );
            assert!(comment.created_at >= song.created_at);
            assert!(is_v7(comment.id));
            assert_eq!(
                comment.id.get_timestamp().unwrap().to_unix().0,
                comment.created_at.timestamp() as u64
            );
            assert!(origin::domain::CommentBody::parse(comment.body.clone()).is_ok());
        }
        for id in 1..=1_000 {
            let song = generator.song(id);
            assert!((MIN_DURATION_MS..=MAX_DURATION_MS).contains(&song.duration_ms));
        }
    }

    #[test]
    fn popularity_is_skewed_and_scattered() {
        let mut generator = Generator::new(dataset(3)).unwrap();
        let mut per_song = vec![0u32; 1_001];
        for index in 0..20_000 {
            per_song[generator.comment(index).song_id.get() as usize] += 1;
        }
        let max = *per_song.iter().max().unwrap();
        let busiest = per_song.iter().position(|&n| n == max).unwrap();
        // 20 comments per song on average; the Zipf head gets far more.
        assert!(max > 200, "max {max}");
        assert_ne!(busiest, 1, "popular songs should be scattered over the ids");
    }

    #[test]
    fn refuses_empty_and_bad_exponent() {
        assert!(
            Generator::new(Dataset {
                songs: 0,
                ..dataset(1)
            })
            .is_err()
        );
        assert!(
            Generator::new(Dataset {
                zipf_exponent: f64::NAN,
                ..dataset(1)
            })
            .is_err()
        );
        assert!(
            Generator::new(Dataset {
                zipf_exponent: -1.0,
                ..dataset(1)
            })
            .is_err()
        );
    }
}
