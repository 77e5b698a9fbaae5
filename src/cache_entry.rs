//! What a `product:<id>` key can hold, and the one place that writes and reads it:
//!
//! - a product: its served JSON bytes, exactly (a hit does no JSON work);
//! - the missing marker `!missing:v1:<expiry>`: the table had no such product a moment ago;
//! - a fill lease `!lease:v1:<expiry>:<token>`: a reader that missed owns the key until
//!   it stores what it read;
//! - anything else ([`CacheEntry::Corrupt`]): treated as a miss and overwritten.
//!
//! Markers share the product's key, so there is one key per product (which keeps cluster
//! mode trivial). They are not JSON, so they can never be mistaken for a product. Each
//! carries its own expiry (`<expiry>`: Unix time in milliseconds) besides the key's TTL:
//! a marker whose TTL was lost (PERSIST, a restore, a replica promotion) stops being
//! believed when its own expiry passes. The `v1` leaves room for another layout; a marker
//! of an unknown version is [`CacheEntry::Corrupt`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use crate::domain::Product;

/// Start of the missing marker.
const MISSING_PREFIX: &[u8] = b"!missing:v1:";
/// Start of a fill lease.
const LEASE_PREFIX: &[u8] = b"!lease:v1:";

/// Default time an id the table lacks is remembered.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// The shortest negative TTL: below it a marker would not save a table read.
pub const MIN_NEGATIVE_TTL: Duration = Duration::from_secs(1);
/// The longest negative TTL configuration admits.
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(3600);
/// No marker the service writes expires later than this from now (the longest negative
/// TTL, with a minute for clocks that differ between processes): one that claims to is
/// not ours, or was written by a clock far ahead, and is not believed.
const MARKER_HORIZON: Duration =
    Duration::from_secs(MAX_NEGATIVE_TTL.as_secs() + CLOCK_SKEW.as_secs());
/// How far the clocks of the processes that share the cache may differ.
const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// A marker's own expiry is computed just before the key's TTL starts; it counts as
/// passed (the TTL was lost) only this long after, so a marker Redis is about to expire
/// is not mistaken for one that lost its TTL. Short: the marker must still stop being
/// believed within about its intended TTL.
const EXPIRY_GRACE: Duration = Duration::from_millis(200);

/// How long an id the table lacks is remembered: at least [`MIN_NEGATIVE_TTL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegativeTtl(Duration);

impl NegativeTtl {
    /// `ttl`, raised to [`MIN_NEGATIVE_TTL`] when shorter.
    pub fn new(ttl: Duration) -> Self {
        Self(ttl.max(MIN_NEGATIVE_TTL))
    }

    pub fn get(self) -> Duration {
        self.0
    }
}

impl Default for NegativeTtl {
    fn default() -> Self {
        Self(DEFAULT_NEGATIVE_TTL)
    }
}

/// The largest `CACHE_TTL_JITTER_PERCENT` configuration admits: past it entries would
/// live for less than half their TTL.
pub const MAX_TTL_JITTER_PERCENT: u8 = 50;

/// Spreads the expiry of product entries written together (a cold fleet filling the
/// same hot ids, a stream batch refreshing many products) so they do not all expire, and
/// send their readers to the table, in the same second: each TTL is shortened by a
/// random fraction of at most `percent` of it. Never lengthened, so every bound that
/// rests on the configured TTL (how long a change can be served stale) still holds.
/// `0` (the default) leaves every TTL exactly as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TtlJitter {
    percent: u8,
}

impl TtlJitter {
    /// At most `percent` of a TTL taken off, capped at [`MAX_TTL_JITTER_PERCENT`].
    pub fn percent(percent: u8) -> Self {
        Self {
            percent: percent.min(MAX_TTL_JITTER_PERCENT),
        }
    }

    /// `ttl`, shortened by a random fraction of at most the jitter's percentage.
    pub fn apply(self, ttl: Duration) -> Duration {
        if self.percent == 0 {
            return ttl;
        }
        self.apply_with(ttl, fastrand::f64())
    }

    /// `ttl` shortened by `unit` (in `[0, 1)`) of the largest cut; never below 1 ms.
    fn apply_with(self, ttl: Duration, unit: f64) -> Duration {
        let cut = ttl.mul_f64(f64::from(self.percent) / 100.0 * unit.clamp(0.0, 1.0));
        ttl.saturating_sub(cut).max(Duration::from_millis(1))
    }
}

/// When a marker stops being believed: wall-clock time, shared by every process that
/// reads the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expiry {
    unix_millis: u64,
}

impl Expiry {
    /// `ttl` from now.
    pub fn after(ttl: Duration) -> Self {
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        Self {
            unix_millis: unix_millis_now().saturating_add(ttl),
        }
    }

    /// An expiry at this Unix time in milliseconds.
    pub fn at_unix_millis(unix_millis: u64) -> Self {
        Self { unix_millis }
    }

    pub fn has_passed(self) -> bool {
        unix_millis_now() >= self.unix_millis
    }

    /// Later than any marker the service writes could expire.
    fn beyond_horizon(self) -> bool {
        self.beyond(MARKER_HORIZON)
    }

    /// Later than `ahead` from now.
    fn beyond(self, ahead: Duration) -> bool {
        self > Self::after(ahead)
    }

    /// Passed by more than [`EXPIRY_GRACE`].
    fn passed_with_grace(self) -> bool {
        self.passed_by_more_than(Duration::ZERO)
    }

    /// Passed by more than `by` and [`EXPIRY_GRACE`].
    fn passed_by_more_than(self, by: Duration) -> bool {
        let by = u64::try_from((by + EXPIRY_GRACE).as_millis()).unwrap_or(u64::MAX);
        Self {
            unix_millis: self.unix_millis.saturating_add(by),
        }
        .has_passed()
    }
}

fn unix_millis_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// A fill lease: the reader holding it is the one that fills the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    expiry: Expiry,
    /// The encoded lease, as stored; compared byte for byte by the fill.
    bytes: Bytes,
}

impl Lease {
    /// A fresh lease for `ttl`, with a token unique across processes: a random
    /// per-process prefix and a counter (cheap enough for every request, as each one
    /// offers a lease).
    pub fn new(ttl: Duration) -> Self {
        static PROCESS: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let process = PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_u128());
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self::with_token(Expiry::after(ttl), &format!("{process:032x}-{n:x}"))
    }

    /// A lease with a given expiry and token (for tests and tools).
    pub fn with_token(expiry: Expiry, token: &str) -> Self {
        let mut bytes = marker(LEASE_PREFIX, expiry);
        bytes.put_u8(b':');
        bytes.put_slice(token.as_bytes());
        Self {
            expiry,
            bytes: bytes.freeze(),
        }
    }

    /// What a reader whose table read failed leaves in place of its lease: a lease that
    /// expired at the epoch, which the next reader takes over at once (as it would any
    /// expired lease) instead of waiting for a fill that is not coming.
    pub fn released() -> Self {
        Self::with_token(Expiry::at_unix_millis(0), "released")
    }

    /// Whether this is [`Lease::released`], not a lease that lost its TTL.
    pub fn is_released(&self) -> bool {
        self.expiry.unix_millis == 0
    }

    pub fn expiry(&self) -> Expiry {
        self.expiry
    }

    /// The bytes stored under the key.
    pub fn to_bytes(&self) -> Bytes {
        self.bytes.clone()
    }
}

/// What a `product:<id>` key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheEntry {
    Product(Product),
    /// The table had no such product; believed until the expiry.
    Missing(Expiry),
    /// Another reader is filling this key.
    Lease(Lease),
    /// Anything else (garbage, a marker of another version): a miss, overwritten.
    Corrupt(Bytes),
}

impl CacheEntry {
    /// The missing marker for `ttl` from now.
    pub fn missing(ttl: NegativeTtl) -> Self {
        Self::Missing(Expiry::after(ttl.get()))
    }

    /// The bytes to store; [`CacheEntry::decode`] gives the same entry back.
    pub fn encode(&self) -> Bytes {
        match self {
            Self::Product(product) => product.body().clone(),
            Self::Missing(expiry) => marker(MISSING_PREFIX, *expiry).freeze(),
            Self::Lease(lease) => lease.to_bytes(),
            Self::Corrupt(bytes) => bytes.clone(),
        }
    }

    /// Classifies cached bytes without parsing JSON.
    pub fn decode(bytes: Bytes) -> Self {
        if Product::looks_valid(&bytes) {
            return Self::Product(Product::from_json_bytes(bytes));
        }
        if let Some(rest) = bytes.strip_prefix(MISSING_PREFIX) {
            if let Some(expiry) = parse_expiry(rest).filter(|e| !e.beyond_horizon()) {
                return Self::Missing(expiry);
            }
        } else if let Some(rest) = bytes.strip_prefix(LEASE_PREFIX) {
            let lease = rest.iter().position(|b| *b == b':').and_then(|colon| {
                let expiry = parse_expiry(&rest[..colon]).filter(|e| !e.beyond_horizon())?;
                (colon + 1 < rest.len()).then_some(expiry)
            });
            if let Some(expiry) = lease {
                return Self::Lease(Lease { expiry, bytes });
            }
        }
        Self::Corrupt(bytes)
    }

    /// Whether this is a marker whose own expiry has passed (it lost its TTL).
    pub fn is_expired_marker(&self) -> bool {
        match self {
            Self::Missing(expiry) => expiry.passed_with_grace(),
            Self::Lease(lease) => lease.expiry.passed_with_grace(),
            Self::Product(_) | Self::Corrupt(_) => false,
        }
    }
}

fn marker(prefix: &[u8], expiry: Expiry) -> BytesMut {
    let digits = expiry.unix_millis.to_string();
    let mut bytes = BytesMut::with_capacity(prefix.len() + digits.len() + 48);
    bytes.put_slice(prefix);
    bytes.put_slice(digits.as_bytes());
    bytes
}

/// Decimal digits only: no sign, no spaces, at least one digit.
fn parse_expiry(digits: &[u8]) -> Option<Expiry> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse()
        .ok()
        .map(Expiry::at_unix_millis)
}

// ---- Last-known-good copies -------------------------------------------------------
//
// Besides `product:<id>`, a product's served bytes are kept under a second key for much
// longer (`STALE_TTL_SECONDS`), to be served as STALE when the table cannot answer.
//
// The key is `product:/stale/{<tag>}<id>`:
// - it never equals `product:<id>` of a valid id: that would need an id starting with
//   `/stale/`, and a valid id never contains `/`; and two ids never share a copy key,
//   because `<tag>` holds no `}` (so the first `}` ends it) and the id follows it as is;
// - it starts with `product:`, so the serverless ACL pattern `~product:*` covers it;
// - `<tag>` is a short string whose hash slot is the slot of `product:<id>`, so in
//   cluster mode both keys live on the same shard: the fill writes both in one script
//   (one round trip), and a REMOVE can reach both. Ids may hold `{` and `}`, so the
//   slot of `product:<id>` is sometimes that of a hash tag inside the id, sometimes
//   that of the whole key; wrapping the id itself in braces could not follow both
//   rules (an id with a `}` would end the tag early), while a tag chosen by slot can.
//
// The value is `!stale:v1:<written>:` (Unix milliseconds) followed by the served bytes,
// exactly: the age header is derived from `<written>`, and what is served is what a hit
// would have served.

/// Start of a last-known-good copy's key.
const STALE_KEY_PREFIX: &str = "product:/stale/{";
/// Start of a last-known-good copy's value.
const STALE_PREFIX: &[u8] = b"!stale:v1:";

/// Default time a last-known-good copy is kept.
pub const DEFAULT_STALE_TTL: Duration = Duration::from_secs(86_400);

/// The key of the last-known-good copy of the product cached under `product_key`
/// (`product:<id>`, from [`crate::domain::ProductId::cache_key`]).
pub fn stale_key(product_key: &str) -> String {
    let id = product_key
        .strip_prefix(crate::domain::CACHE_KEY_PREFIX)
        .unwrap_or(product_key);
    let tag = slot_tag(fred::util::redis_keyslot(product_key.as_bytes()));
    let mut key = String::with_capacity(STALE_KEY_PREFIX.len() + tag.len() + 1 + id.len());
    key.push_str(STALE_KEY_PREFIX);
    key.push_str(&tag);
    key.push('}');
    key.push_str(id);
    key
}

/// Cluster hash slots (16384).
const SLOTS: usize = 16_384;
/// The characters of a slot tag.
const TAG_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// The longest slot tag: three characters reach every slot (`every_slot_has_a_tag`).
const TAG_MAX_LEN: usize = 3;

/// The first string over [`TAG_ALPHABET`], in order of length and then of digits, whose
/// hash slot is `slot`.
///
/// Found directly rather than by hashing every candidate up to that slot's (a table of
/// all 16,384 built on first use took 73,033 CRC16s, as many strings, and milliseconds of
/// the first miss of every process). The slot is a CRC16 (XMODEM, zero start) of the
/// tag, masked, and both are linear over strings of one length: the slot of a string is
/// the XOR of the slots of each of its characters alone at its place among zero bytes of
/// that length. So for each prefix, in order, the last character that completes `slot`
/// is looked up, not searched for.
fn slot_tag(slot: u16) -> String {
    let tables = SlotTagTables::get();
    let slot = slot & (SLOTS as u16 - 1);
    for len in 1..=TAG_MAX_LEN {
        let last = &tables.last_char[len - 1];
        let prefixes: usize = (1..len).map(|_| TAG_ALPHABET.len()).product();
        for prefix in 0..prefixes {
            // The prefix's digits, most significant first (odometer order).
            let mut digits = [0u8; TAG_MAX_LEN];
            let mut rest = prefix;
            for digit in digits[..len - 1].iter_mut().rev() {
                *digit = (rest % TAG_ALPHABET.len()) as u8;
                rest /= TAG_ALPHABET.len();
            }
            let prefix_slot = digits[..len - 1]
                .iter()
                .enumerate()
                .fold(0, |acc, (at, &d)| {
                    acc ^ tables.alone[len - 1][at][usize::from(d)]
                });
            if let Some(&d) = last
                .get(usize::from(prefix_slot ^ slot))
                .filter(|&&d| d != NONE)
            {
                digits[len - 1] = d;
                return digits[..len]
                    .iter()
                    .map(|&d| char::from(TAG_ALPHABET[usize::from(d)]))
                    .collect();
            }
        }
    }
    unreachable!("three characters reach every slot")
}

/// No character ([`SlotTagTables::last_char`]).
const NONE: u8 = u8::MAX;

/// For each tag length: the slot of each character alone at each place, and, for the
/// last place, the first character with each slot.
struct SlotTagTables {
    alone: [[[u16; TAG_ALPHABET.len()]; TAG_MAX_LEN]; TAG_MAX_LEN],
    last_char: Vec<Vec<u8>>,
}

impl SlotTagTables {
    /// Built once (about 400 CRC16s of at most three bytes).
    fn get() -> &'static Self {
        static TABLES: std::sync::OnceLock<SlotTagTables> = std::sync::OnceLock::new();
        TABLES.get_or_init(|| {
            let mut alone = [[[0; TAG_ALPHABET.len()]; TAG_MAX_LEN]; TAG_MAX_LEN];
            let mut last_char = Vec::with_capacity(TAG_MAX_LEN);
            for len in 1..=TAG_MAX_LEN {
                for at in 0..len {
                    for (d, &c) in TAG_ALPHABET.iter().enumerate() {
                        let mut alone_there = [0u8; TAG_MAX_LEN];
                        alone_there[at] = c;
                        alone[len - 1][at][d] = fred::util::redis_keyslot(&alone_there[..len]);
                    }
                }
                let mut first = vec![NONE; SLOTS];
                for (d, &slot) in alone[len - 1][len - 1].iter().enumerate().rev() {
                    first[usize::from(slot)] = d as u8;
                }
                last_char.push(first);
            }
            Self { alone, last_char }
        })
    }
}

/// A product's last-known-good copy: its served bytes and when they were written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleCopy {
    written: Expiry,
    product: Product,
}

impl StaleCopy {
    /// A copy of `product` written now.
    pub fn now(product: Product) -> Self {
        Self {
            written: Expiry::after(Duration::ZERO),
            product,
        }
    }

    /// The bytes to store under [`stale_key`].
    pub fn encode(&self) -> Bytes {
        let mut bytes = marker(STALE_PREFIX, self.written);
        bytes.put_u8(b':');
        bytes.put_slice(self.product.body());
        bytes.freeze()
    }

    /// The copy in `bytes`; `None` when they are not one (then they are not served).
    pub fn decode(bytes: &Bytes) -> Option<Self> {
        let rest = bytes.strip_prefix(STALE_PREFIX)?;
        let colon = rest.iter().position(|b| *b == b':')?;
        let written = parse_expiry(&rest[..colon])?;
        let start = STALE_PREFIX.len() + colon + 1;
        let body = bytes.slice(start..);
        Product::looks_valid(&body).then(|| Self {
            written,
            product: Product::from_json_bytes(body),
        })
    }

    /// How long ago the copy was written (zero if the clock went back).
    pub fn age(&self) -> Duration {
        Duration::from_millis(unix_millis_now().saturating_sub(self.written.unix_millis))
    }

    /// Whether the copy may be served when copies are kept for `stale_ttl`: written at
    /// most that long ago (one that lost its TTL, by PERSIST, a restore or a TTL lowered
    /// since, stops being believed when it should have expired) and not after now, give
    /// or take the clocks' skew (a copy dated ahead is not ours, and its age is a lie).
    pub fn is_within(&self, stale_ttl: Duration) -> bool {
        !self.written.passed_by_more_than(stale_ttl) && !self.written.beyond(CLOCK_SKEW)
    }

    pub fn into_product(self) -> Product {
        self.product
    }
}

/// Asserts that `ttls` were drawn with `jitter` from `ttl`: none above it, none below
/// what the jitter may take off, and spread over most of that range (for tests of what
/// writes entries).
#[cfg(test)]
pub(crate) fn assert_jittered(ttls: &[Duration], ttl: Duration, percent: u8) {
    let shortest = ttl.mul_f64(1.0 - f64::from(percent) / 100.0);
    assert!(
        ttls.iter().all(|t| (shortest..=ttl).contains(t)),
        "outside {shortest:?}..={ttl:?}: {ttls:?}"
    );
    let (min, max) = (ttls.iter().min().unwrap(), ttls.iter().max().unwrap());
    let spread = max.saturating_sub(*min);
    assert!(
        spread > (ttl - shortest).mul_f64(0.75),
        "spread only {spread:?}: {ttls:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_only_shortens_a_ttl_by_at_most_its_percentage() {
        // GIVEN a 300 s TTL and 20 % jitter
        let ttl = Duration::from_secs(300);
        let jitter = TtlJitter::percent(20);
        // THEN the extremes are the TTL itself and 80 % of it
        assert_eq!(jitter.apply_with(ttl, 0.0), ttl);
        assert_eq!(jitter.apply_with(ttl, 1.0), Duration::from_secs(240));
        assert_eq!(jitter.apply_with(ttl, 0.5), Duration::from_secs(270));
        // AND random draws stay inside them and spread over them
        let drawn: std::collections::BTreeSet<Duration> =
            (0..1_000).map(|_| jitter.apply(ttl)).collect();
        assert!(
            drawn
                .iter()
                .all(|d| (Duration::from_secs(240)..=ttl).contains(d))
        );
        assert!(
            drawn.len() > 900,
            "only {} distinct TTLs in 1,000 draws",
            drawn.len()
        );
        assert!(*drawn.first().unwrap() < Duration::from_secs(250));
        assert!(*drawn.last().unwrap() > Duration::from_secs(290));
    }

    #[test]
    fn no_jitter_keeps_the_ttl_exact_and_the_percentage_is_capped() {
        let ttl = Duration::from_secs(300);
        assert!((0..100).all(|_| TtlJitter::default().apply(ttl) == ttl));
        assert_eq!(TtlJitter::percent(0), TtlJitter::default());
        assert_eq!(
            TtlJitter::percent(90),
            TtlJitter::percent(MAX_TTL_JITTER_PERCENT)
        );
        // A 1 ms TTL is never cut to nothing (PX 0 is an error in Redis).
        assert_eq!(
            TtlJitter::percent(50).apply_with(Duration::from_millis(1), 1.0),
            Duration::from_millis(1)
        );
    }

    fn later() -> Expiry {
        Expiry::after(Duration::from_secs(60))
    }

    #[test]
    fn every_entry_decodes_to_what_was_encoded() {
        // GIVEN one entry of each kind
        let product = Product::from_json_bytes(Bytes::from_static(br#"{"productId":"1"}"#));
        let entries = [
            CacheEntry::Product(product),
            CacheEntry::Missing(later()),
            CacheEntry::Lease(Lease::new(Duration::from_secs(3))),
            CacheEntry::Corrupt(Bytes::from_static(b"{broken")),
        ];
        for entry in entries {
            // WHEN encoded and decoded THEN it is the same entry
            assert_eq!(CacheEntry::decode(entry.encode()), entry);
        }
    }

    #[test]
    fn markers_name_their_kind_version_and_expiry() {
        // GIVEN markers with a known expiry
        let expiry = Expiry::at_unix_millis(1_795_338_000_123);
        // THEN they read plainly in redis-cli
        assert_eq!(
            CacheEntry::Missing(expiry).encode().as_ref(),
            b"!missing:v1:1795338000123"
        );
        assert_eq!(
            Lease::with_token(expiry, "abc").to_bytes().as_ref(),
            b"!lease:v1:1795338000123:abc"
        );
    }

    #[test]
    fn leases_are_unique() {
        let ttl = Duration::from_secs(3);
        assert_ne!(Lease::new(ttl), Lease::new(ttl));
    }

    #[test]
    fn unknown_and_malformed_markers_are_corrupt() {
        for bytes in [
            &b"!missing"[..],
            b"!missing:v2:1",
            b"!missing:v1:",
            b"!missing:v1:12x",
            b"!lease:0123-1",
            b"!lease:v1:1",
            b"!lease:v1:1:",
            b"!lease:v1:-1:t",
            b"garbage",
            b"",
        ] {
            assert_eq!(
                CacheEntry::decode(Bytes::from_static(bytes)),
                CacheEntry::Corrupt(Bytes::from_static(bytes)),
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn a_marker_past_its_own_expiry_is_expired() {
        // GIVEN markers whose expiry has passed, and fresh ones
        let past = Expiry::at_unix_millis(1);
        // THEN only the past ones are expired; products never are
        assert!(CacheEntry::Missing(past).is_expired_marker());
        assert!(CacheEntry::Lease(Lease::with_token(past, "t")).is_expired_marker());
        assert!(!CacheEntry::Missing(later()).is_expired_marker());
        assert!(!CacheEntry::Lease(Lease::new(Duration::from_secs(3))).is_expired_marker());
        let product = Product::from_json_bytes(Bytes::from_static(b"{}"));
        assert!(!CacheEntry::Product(product).is_expired_marker());
    }

    #[test]
    fn the_negative_ttl_has_a_floor_and_a_default() {
        assert_eq!(NegativeTtl::new(Duration::ZERO).get(), MIN_NEGATIVE_TTL);
        assert_eq!(
            NegativeTtl::new(Duration::from_secs(5)).get(),
            Duration::from_secs(5)
        );
        assert_eq!(NegativeTtl::default().get(), DEFAULT_NEGATIVE_TTL);
    }

    #[test]
    fn a_marker_expiring_beyond_any_ttl_we_write_is_not_believed() {
        // GIVEN markers that claim to live far longer than any the service writes (not
        // ours, or a clock far ahead), kept for good once their TTL is lost
        let far = Expiry::after(MARKER_HORIZON + Duration::from_secs(60));
        let missing = marker(MISSING_PREFIX, far).freeze();
        let lease = Lease::with_token(far, "t").to_bytes();
        let absurd = Bytes::from_static(b"!missing:v1:18446744073709551615");
        // THEN they are corrupt entries (a miss, overwritten), not markers
        for bytes in [missing, lease, absurd] {
            assert!(
                matches!(CacheEntry::decode(bytes.clone()), CacheEntry::Corrupt(_)),
                "{bytes:?}"
            );
        }
        // AND the longest negative TTL still decodes as a marker
        let longest = CacheEntry::missing(NegativeTtl::new(MAX_NEGATIVE_TTL));
        assert_eq!(CacheEntry::decode(longest.encode()), longest);
    }

    #[test]
    fn a_marker_is_past_its_expiry_only_after_a_grace() {
        // GIVEN a marker whose own expiry passed a moment ago (Redis is about to expire it)
        let just = Expiry::at_unix_millis(unix_millis_now() - 100);
        // THEN it is not yet taken for one that lost its TTL; past the grace it is
        assert!(!CacheEntry::Missing(just).is_expired_marker());
        let long_ago = Expiry::at_unix_millis(unix_millis_now() - 1_500);
        assert!(CacheEntry::Missing(long_ago).is_expired_marker());
    }

    #[test]
    fn stale_keys_share_the_product_keys_slot_and_never_equal_a_product_key() {
        // GIVEN ids with and without hash tags, braces, colons and unicode
        let ids = [
            "p1", "a:stale", "{x}", "a{b}c", "a}b", "{}z", "{", "}", "a{", "é😀", "0",
        ];
        let mut keys = std::collections::HashSet::new();
        for raw in ids {
            let product_key = crate::domain::ProductId::parse(raw).unwrap().cache_key();
            let key = stale_key(&product_key);
            // THEN the copy lives in the same cluster slot, under product:, and is its own
            assert_eq!(
                fred::util::redis_keyslot(key.as_bytes()),
                fred::util::redis_keyslot(product_key.as_bytes()),
                "{key}"
            );
            assert!(key.starts_with("product:/stale/{"), "{key}");
            assert!(crate::domain::ProductId::parse(&key["product:".len()..]).is_err());
            assert!(keys.insert(key));
        }
        assert_eq!(stale_key("product:p1").rsplit('}').next(), Some("p1"));
    }

    /// The tags as the table of earlier releases held them (copies they wrote live under
    /// these keys): every string over their alphabet, in order of length and then of
    /// digits, the first for each slot kept. The alphabet is spelled out again here, so
    /// that a change to [`TAG_ALPHABET`] fails the test instead of moving both sides.
    fn reference_tags() -> Vec<String> {
        const EARLIER_ALPHABET: &[u8] =
            b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut tags = vec![String::new(); SLOTS];
        for len in 1..=3u32 {
            for n in 0..EARLIER_ALPHABET.len().pow(len) {
                let (mut rest, mut tag) = (n, vec![0u8; len as usize]);
                for c in tag.iter_mut().rev() {
                    *c = EARLIER_ALPHABET[rest % EARLIER_ALPHABET.len()];
                    rest /= EARLIER_ALPHABET.len();
                }
                let slot = usize::from(fred::util::redis_keyslot(&tag));
                if tags[slot].is_empty() {
                    tags[slot] = String::from_utf8(tag).unwrap();
                }
            }
        }
        tags
    }

    #[test]
    fn every_slot_has_the_tag_earlier_releases_gave_it() {
        // GIVEN the tags by exhaustive search (three characters reach every slot)
        let reference = reference_tags();
        assert!(reference.iter().all(|tag| !tag.is_empty()));
        // AND some that earlier releases' table held, as written then
        for (slot, tag) in [
            (0, "06S"),
            (1, "Qi"),
            (2, "5L5"),
            (100, "0or"),
            (5458, "Ri"),
            (12182, "9Le"),
            (16383, "6ZJ"),
        ] {
            assert_eq!(reference[slot], tag, "{slot}");
        }
        // THEN the direct search finds the same, so copies written before stay found
        for (slot, tag) in reference.iter().enumerate() {
            assert_eq!(&slot_tag(slot as u16), tag, "{slot}");
        }
    }

    #[test]
    fn every_slot_has_a_tag() {
        for slot in 0..16_384u16 {
            let tag = slot_tag(slot);
            // Alphanumeric: the first `}` after the `{` ends the tag Redis hashes.
            assert!(
                !tag.is_empty() && tag.bytes().all(|c| c.is_ascii_alphanumeric()),
                "{slot}"
            );
            assert_eq!(fred::util::redis_keyslot(tag.as_bytes()), slot);
        }
    }

    #[test]
    fn a_stale_copy_keeps_the_exact_bytes_and_its_age() {
        // GIVEN a copy written 90 s ago
        let body = Bytes::from_static(br#"{"price":1.10,"productId":"1"}"#);
        let written = Expiry::at_unix_millis(unix_millis_now() - 90_000);
        let copy = StaleCopy {
            written,
            product: Product::from_json_bytes(body.clone()),
        };
        // WHEN encoded and decoded THEN the bytes and the age survive
        let encoded = copy.encode();
        assert!(encoded.starts_with(b"!stale:v1:"));
        let decoded = StaleCopy::decode(&encoded).unwrap();
        assert_eq!(decoded.age().as_secs(), 90);
        assert_eq!(decoded.into_product().body(), &body);
        // AND anything else is no copy
        for bad in [
            &b"{}"[..],
            b"!stale:v1:x:{}",
            b"!stale:v1:1:garbage",
            b"!stale:v1:1",
        ] {
            assert_eq!(StaleCopy::decode(&Bytes::from_static(bad)), None);
        }
    }
}
