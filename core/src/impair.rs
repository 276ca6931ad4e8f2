//! Link impairments: what a direction of a wire does to the frames it carries (delay, jitter,
//! loss, corruption, duplication, reordering, a rate limit), their one validation, their
//! text form, and the [`Shaper`] that decides each frame's fate.
//!
//! Values are kept as integers (microseconds, parts per million, bits per second) so a link
//! spec compares exactly and a value read back from OVSDB is the one written.
//!
//! The text form is `key=value` pairs separated by spaces, each value with its unit:
//! `delay=20ms jitter=2ms jitter-correlation=25% loss=1% rate=100mbit`. Both directions of a
//! link are written `a->b: <pairs>; b->a: <pairs>`, or just `<pairs>` when both are the same.

use std::fmt;
use std::str::FromStr;

use crate::stats::Direction;

/// One percent in parts per million.
pub const PERCENT: u32 = 10_000;
/// A hundred percent in parts per million.
pub const ALL: u32 = 100 * PERCENT;
/// Longest delay or jitter: 10 s (a frame waits at most this long, and the queue holds it).
pub const MAX_DELAY_US: u64 = 10_000_000;
/// Lowest rate: 8 kbit/s (one 1500-byte frame takes 1.5 s).
pub const MIN_RATE: u64 = 8_000;
/// Highest rate: 100 Gbit/s.
pub const MAX_RATE: u64 = 100_000_000_000;
/// Frames one direction holds at most while they wait (netem's default limit); more are
/// dropped, like a full queue.
pub const QUEUE_LIMIT: usize = 1000;

/// A value that is not a valid impairment parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}: {why}")]
pub struct ImpairError {
    /// The parameter: `delay`, `loss`, `rate`...
    pub field: String,
    /// The value as given.
    pub value: String,
    /// What is wrong and what is accepted.
    pub why: String,
}

impl ImpairError {
    fn new(field: &str, value: impl fmt::Display, why: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            value: value.to_string(),
            why: why.into(),
        }
    }
}

/// What one direction of a link does to its frames. The default does nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Impairment {
    /// Fixed one-way delay, microseconds.
    pub delay_us: u64,
    /// Standard deviation of a normal variation added to the delay, microseconds.
    pub jitter_us: u64,
    /// How much each jitter sample follows the previous one, ppm.
    pub jitter_correlation: u32,
    /// Frames dropped, ppm.
    pub loss: u32,
    /// How much each loss decision follows the previous one, ppm.
    pub loss_correlation: u32,
    /// Frames with one bit flipped, ppm.
    pub corrupt: u32,
    /// Frames sent twice, ppm.
    pub duplicate: u32,
    /// Frames sent at once, ahead of the delayed ones, ppm.
    pub reorder: u32,
    /// Bits per second the direction carries at most; 0 for no limit.
    pub rate: u64,
}

/// Names of the parameters, in the order the text form writes them.
pub const FIELDS: [&str; 9] = [
    "delay",
    "jitter",
    "jitter-correlation",
    "loss",
    "loss-correlation",
    "corrupt",
    "duplicate",
    "reorder",
    "rate",
];

impl Impairment {
    /// Whether it changes nothing: frames take the direct path.
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }

    /// Checks the combination: jitter and reorder need a delay, a correlation needs its
    /// parameter, and every value is in range.
    pub fn validate(&self) -> Result<(), ImpairError> {
        for (field, v) in [("delay", self.delay_us), ("jitter", self.jitter_us)] {
            if v > MAX_DELAY_US {
                return Err(ImpairError::new(
                    field,
                    fmt_duration(v),
                    "is over the longest accepted, 10s (use 0 to 10s)",
                ));
            }
        }
        for (field, v) in [
            ("jitter-correlation", self.jitter_correlation),
            ("loss", self.loss),
            ("loss-correlation", self.loss_correlation),
            ("corrupt", self.corrupt),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if v > ALL {
                return Err(ImpairError::new(
                    field,
                    fmt_ppm(v),
                    "is over 100% (use 0% to 100%)",
                ));
            }
        }
        if self.rate != 0 && !(MIN_RATE..=MAX_RATE).contains(&self.rate) {
            return Err(ImpairError::new(
                "rate",
                fmt_rate(self.rate),
                "is out of range (use 8kbit to 100gbit)",
            ));
        }
        // A parameter that only means something with another one.
        let needs = [
            (
                self.jitter_us > 0 && self.delay_us == 0,
                "jitter",
                fmt_duration(self.jitter_us),
                "needs a delay: jitter varies the delay (add delay=...)",
            ),
            (
                self.reorder > 0 && self.delay_us == 0,
                "reorder",
                fmt_ppm(self.reorder),
                "needs a delay: reordered frames are the ones sent without it (add delay=...)",
            ),
            (
                self.jitter_correlation > 0 && self.jitter_us == 0,
                "jitter-correlation",
                fmt_ppm(self.jitter_correlation),
                "needs a jitter (add jitter=...)",
            ),
            (
                self.loss_correlation > 0 && self.loss == 0,
                "loss-correlation",
                fmt_ppm(self.loss_correlation),
                "needs a loss (add loss=...)",
            ),
        ];
        if let Some((_, field, value, why)) = needs.into_iter().find(|n| n.0) {
            return Err(ImpairError::new(field, value, why));
        }
        Ok(())
    }

    /// Sets parameter `field` from `value` as a user wrote it (`20ms`, `1%`, `100mbit`).
    /// `bare_units` says how a number without a unit is read (a topology file's
    /// netlab-style numbers); without them a unit is required.
    pub fn set(&mut self, field: &str, value: &str, bare: BareUnits) -> Result<(), ImpairError> {
        let value = value.trim();
        match field {
            "delay" => self.delay_us = parse_duration(field, value, bare)?,
            "jitter" => self.jitter_us = parse_duration(field, value, bare)?,
            "jitter-correlation" => self.jitter_correlation = parse_percent(field, value, bare)?,
            "loss" => self.loss = parse_percent(field, value, bare)?,
            "loss-correlation" => self.loss_correlation = parse_percent(field, value, bare)?,
            "corrupt" => self.corrupt = parse_percent(field, value, bare)?,
            "duplicate" => self.duplicate = parse_percent(field, value, bare)?,
            "reorder" => self.reorder = parse_percent(field, value, bare)?,
            "rate" => self.rate = parse_rate(field, value, bare)?,
            _ => {
                return Err(ImpairError::new(
                    field,
                    value,
                    format!("is not an impairment; use one of {}", FIELDS.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// The parameters that are set, as `(name, value with unit)`.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut dur = |name, v: u64| {
            if v > 0 {
                out.push((name, fmt_duration(v)));
            }
        };
        dur("delay", self.delay_us);
        dur("jitter", self.jitter_us);
        for (name, v) in [
            ("jitter-correlation", self.jitter_correlation),
            ("loss", self.loss),
            ("loss-correlation", self.loss_correlation),
            ("corrupt", self.corrupt),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ] {
            if v > 0 {
                out.push((name, fmt_ppm(v)));
            }
        }
        if self.rate > 0 {
            out.push(("rate", fmt_rate(self.rate)));
        }
        out
    }
}

impl fmt::Display for Impairment {
    /// `delay=20ms loss=1%`, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields = self.fields();
        if fields.is_empty() {
            return f.write_str("none");
        }
        let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&parts.join(" "))
    }
}

impl FromStr for Impairment {
    type Err = ImpairError;

    /// The [`Display`](fmt::Display) form: `key=value` pairs with units, or `none`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut imp = Self::default();
        let s = s.trim();
        if s.is_empty() || s == "none" {
            return Ok(imp);
        }
        for pair in s.split_whitespace() {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                ImpairError::new(
                    "impairment",
                    pair,
                    "must be written key=value, like delay=20ms",
                )
            })?;
            imp.set(k, v, BareUnits::Required)?;
        }
        imp.validate()?;
        Ok(imp)
    }
}

/// A link's impairments, one per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkImpairment {
    /// Frames `a` sends.
    pub a_to_b: Impairment,
    /// Frames `b` sends.
    pub b_to_a: Impairment,
}

impl LinkImpairment {
    /// The same impairment both ways.
    pub fn both(imp: Impairment) -> Self {
        Self {
            a_to_b: imp,
            b_to_a: imp,
        }
    }

    /// Whether neither direction is impaired.
    pub fn is_none(&self) -> bool {
        self.a_to_b.is_none() && self.b_to_a.is_none()
    }

    /// The impairment of direction `dir`.
    pub fn get(&self, dir: Direction) -> &Impairment {
        match dir {
            Direction::AtoB => &self.a_to_b,
            Direction::BtoA => &self.b_to_a,
        }
    }

    /// The impairment of direction `dir`, to change.
    pub fn get_mut(&mut self, dir: Direction) -> &mut Impairment {
        match dir {
            Direction::AtoB => &mut self.a_to_b,
            Direction::BtoA => &mut self.b_to_a,
        }
    }

    /// The same impairments with `a` and `b` swapped (for ends written in the other order).
    pub fn swapped(self) -> Self {
        Self {
            a_to_b: self.b_to_a,
            b_to_a: self.a_to_b,
        }
    }
}

impl fmt::Display for LinkImpairment {
    /// `none`, `delay=20ms` (both ways), or `a->b: delay=20ms; b->a: none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.a_to_b == self.b_to_a {
            write!(f, "{}", self.a_to_b)
        } else {
            write!(f, "a->b: {}; b->a: {}", self.a_to_b, self.b_to_a)
        }
    }
}

impl FromStr for LinkImpairment {
    type Err = ImpairError;

    /// The [`Display`](fmt::Display) form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if !s.contains("->") {
            return Ok(Self::both(s.parse()?));
        }
        let mut out = Self::default();
        for part in s.split(';') {
            let (dir, imp) = part.split_once(':').ok_or_else(|| {
                ImpairError::new(
                    "impairment",
                    part.trim(),
                    "must be written a->b: key=value ...; b->a: key=value ...",
                )
            })?;
            let dir = parse_direction(dir.trim())?;
            *out.get_mut(dir) = imp.parse()?;
        }
        Ok(out)
    }
}

/// Reads a link's `impair` as a topology file writes it, with `a` the first endpoint as
/// written: the text form (`delay=20ms loss=1%`, or `a->b: ...; b->a: ...`), a mapping of
/// parameters for both directions (`{delay: 20ms, loss: 1%}`), or one mapping per direction
/// (`{a->b: {delay: 20ms}, b->a: {loss: 1%}}`). Numbers without a unit are netlab's
/// (milliseconds, percent, kbit/s). Errors name the parameter as written
/// (`impair.a->b.loss`).
pub fn from_yaml(value: &serde_yaml_ng::Value) -> Result<LinkImpairment, ImpairError> {
    use serde_yaml_ng::Value;
    let prefix = |mut e: ImpairError, at: &str| {
        e.field = format!("{at}.{}", e.field);
        e
    };
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let params = |v: &Value, at: &str| -> Result<Impairment, ImpairError> {
        let Value::Mapping(m) = v else {
            return Err(ImpairError::new(
                at,
                format!("{v:?}"),
                "must be a mapping of parameters, like {delay: 20ms, loss: 1%}",
            ));
        };
        let mut imp = Impairment::default();
        for (k, v) in m {
            let key = scalar(k).unwrap_or_default();
            let value = scalar(v).ok_or_else(|| {
                ImpairError::new(&format!("{at}.{key}"), format!("{v:?}"), "must be a value")
            })?;
            imp.set(&key, &value, BareUnits::Netlab)
                .map_err(|e| prefix(e, at))?;
        }
        imp.validate().map_err(|e| prefix(e, at))?;
        Ok(imp)
    };
    match value {
        Value::Null => Ok(LinkImpairment::default()),
        Value::String(s) => s.parse().map_err(|e| prefix(e, "impair")),
        Value::Mapping(m) => {
            let directional = m
                .keys()
                .any(|k| matches!(k.as_str(), Some("a->b" | "b->a")));
            if !directional {
                return Ok(LinkImpairment::both(params(value, "impair")?));
            }
            let mut out = LinkImpairment::default();
            for (k, v) in m {
                let key = k.as_str().unwrap_or_default();
                let dir = parse_direction(key).map_err(|e| prefix(e, "impair"))?;
                *out.get_mut(dir) = params(v, &format!("impair.{key}"))?;
            }
            Ok(out)
        }
        other => Err(ImpairError::new(
            "impair",
            format!("{other:?}"),
            "must be a mapping like {delay: 20ms, loss: 1%} or {a->b: {...}, b->a: {...}}",
        )),
    }
}

/// Parses `a->b` or `b->a`.
pub fn parse_direction(s: &str) -> Result<Direction, ImpairError> {
    match s {
        "a->b" => Ok(Direction::AtoB),
        "b->a" => Ok(Direction::BtoA),
        _ => Err(ImpairError::new(
            "direction",
            s,
            "must be a->b or b->a (a is the end that sorts first)",
        )),
    }
}

/// How a number without a unit is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareUnits {
    /// A unit is required.
    Required,
    /// netlab's `tc` units: milliseconds, percent, kbit/s.
    Netlab,
}

fn number<'a>(field: &str, value: &'a str) -> Result<(f64, &'a str), ImpairError> {
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(value.len());
    let (num, unit) = value.split_at(split);
    let n: f64 = num.parse().map_err(|_| {
        ImpairError::new(
            field,
            value,
            "must be a number with a unit, like 20ms, 1% or 100mbit",
        )
    })?;
    if !n.is_finite() {
        return Err(ImpairError::new(field, value, "must be a finite number"));
    }
    if n < 0.0 {
        return Err(ImpairError::new(field, value, "must not be negative"));
    }
    Ok((n, unit.trim()))
}

fn parse_duration(field: &str, value: &str, bare: BareUnits) -> Result<u64, ImpairError> {
    let (n, unit) = number(field, value)?;
    let scale = match (unit.to_ascii_lowercase().as_str(), bare) {
        ("us" | "usec" | "µs", _) => 1.0,
        ("ms" | "msec", _) | ("", BareUnits::Netlab) => 1e3,
        ("s" | "sec", _) => 1e6,
        _ => {
            return Err(ImpairError::new(
                field,
                value,
                "needs a time unit: us, ms or s (like 20ms); range 0 to 10s",
            ));
        }
    };
    let us = (n * scale).round();
    if us > MAX_DELAY_US as f64 {
        return Err(ImpairError::new(
            field,
            value,
            "is over the longest accepted, 10s (use 0 to 10s)",
        ));
    }
    Ok(us as u64)
}

fn parse_percent(field: &str, value: &str, bare: BareUnits) -> Result<u32, ImpairError> {
    let (n, unit) = number(field, value)?;
    match (unit, bare) {
        ("%", _) | ("", BareUnits::Netlab) => {}
        _ => {
            return Err(ImpairError::new(
                field,
                value,
                "must be a percentage, like 1% or 0.5% (0% to 100%)",
            ));
        }
    }
    if n > 100.0 {
        return Err(ImpairError::new(
            field,
            value,
            "is over 100% (use 0% to 100%)",
        ));
    }
    Ok((n * f64::from(PERCENT)).round() as u32)
}

fn parse_rate(field: &str, value: &str, bare: BareUnits) -> Result<u64, ImpairError> {
    let (n, unit) = number(field, value)?;
    let scale = match (unit.to_ascii_lowercase().as_str(), bare) {
        ("bit" | "bps", _) => 1.0,
        ("k" | "kbit" | "kbps", _) | ("", BareUnits::Netlab) => 1e3,
        ("m" | "mbit" | "mbps", _) => 1e6,
        ("g" | "gbit" | "gbps", _) => 1e9,
        _ => {
            return Err(ImpairError::new(
                field,
                value,
                "needs a unit of bits per second: bit, kbit, mbit or gbit (like 100mbit); \
                 range 8kbit to 100gbit",
            ));
        }
    };
    let bits = (n * scale).round();
    if bits == 0.0 {
        return Err(ImpairError::new(
            field,
            value,
            "must not be zero (use 8kbit to 100gbit; to cut a link, take it down)",
        ));
    }
    if !(MIN_RATE as f64..=MAX_RATE as f64).contains(&bits) {
        return Err(ImpairError::new(
            field,
            value,
            "is out of range (use 8kbit to 100gbit)",
        ));
    }
    Ok(bits as u64)
}

/// `20ms`, `1.5ms`, `250us`, `2s`.
pub fn fmt_duration(us: u64) -> String {
    if us >= 1_000_000 && us % 1_000_000 == 0 {
        format!("{}s", us / 1_000_000)
    } else if us >= 1000 && us % 10 == 0 {
        let ms = us as f64 / 1000.0;
        format!("{}ms", trim_float(ms))
    } else {
        format!("{us}us")
    }
}

/// `1%`, `0.25%`.
pub fn fmt_ppm(ppm: u32) -> String {
    format!("{}%", trim_float(f64::from(ppm) / f64::from(PERCENT)))
}

/// `100mbit`, `1.5gbit`, `64kbit`, `9000bit`.
pub fn fmt_rate(bits: u64) -> String {
    for (unit, scale) in [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)] {
        let v = bits as f64 / scale;
        if v >= 1.0 && (v * 1000.0).fract() == 0.0 {
            return format!("{}{unit}", trim_float(v));
        }
    }
    format!("{bits}bit")
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_owned()
}

/// A small, fast pseudo-random generator (SplitMix64): impairment decisions need speed and
/// independence, not cryptographic strength.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Uniform below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// A yes/no decision that repeats the previous one by a correlation, keeping its average
/// (a two-state Markov chain: after a yes the chance is `p + c(1-p)`, after a no `p(1-c)`;
/// unlike netem's blend of random numbers, which lowers the average as the correlation grows).
#[derive(Debug, Clone, Copy, Default)]
struct Streak {
    last: bool,
}

impl Streak {
    fn decide(&mut self, rng: &mut Rng, ppm: u32, correlation_ppm: u32) -> bool {
        let p = f64::from(ppm) / f64::from(ALL);
        let c = f64::from(correlation_ppm) / f64::from(ALL);
        let q = if self.last {
            p + c * (1.0 - p)
        } else {
            p * (1.0 - c)
        };
        self.last = rng.uniform() < q;
        self.last
    }
}

/// What happens to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    /// How many copies leave: 0 (lost), 1, or 2 (duplicated).
    pub copies: u8,
    /// When they leave, in the caller's clock (nanoseconds).
    pub at_ns: u64,
    /// A bit to flip: byte offset and mask.
    pub corrupt: Option<(usize, u8)>,
}

/// Decides each frame's fate for one direction; pure and clocked by the caller.
///
/// The order is netem's: duplication, loss, corruption, then timing. A frame is delayed by
/// `delay` plus a normal jitter sample (never below zero), then waits for the rate limit's
/// serialisation; frames keep their order unless `reorder` picks one to go at once, ahead of
/// the delayed frames. Jitter alone never reorders, as on a real circuit.
#[derive(Debug, Clone)]
pub struct Shaper {
    imp: Impairment,
    rng: Rng,
    loss: Streak,
    /// The last jitter sample (standard normal), for correlated jitter.
    jitter_last: f64,
    /// When the rate limiter is free again.
    line_free_ns: u64,
    /// When the last in-order frame leaves.
    last_ns: u64,
}

impl Shaper {
    /// A shaper for `imp`, its randomness seeded with `seed`.
    pub fn new(imp: Impairment, seed: u64) -> Self {
        Self {
            imp,
            rng: Rng::new(seed),
            loss: Streak::default(),
            jitter_last: 0.0,
            line_free_ns: 0,
            last_ns: 0,
        }
    }

    /// The impairment applied.
    pub fn impairment(&self) -> &Impairment {
        &self.imp
    }

    /// Applies a new impairment from the next frame on.
    pub fn set(&mut self, imp: Impairment) {
        self.imp = imp;
    }

    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.rng.uniform() * f64::from(ALL) < f64::from(ppm)
    }

    /// The fate of a frame of `len` bytes arriving at `now_ns`.
    pub fn admit(&mut self, now_ns: u64, len: usize) -> Fate {
        let imp = self.imp;
        let mut copies: u8 = 1;
        if self.chance(imp.duplicate) {
            copies += 1;
        }
        if imp.loss > 0
            && self
                .loss
                .decide(&mut self.rng, imp.loss, imp.loss_correlation)
        {
            copies -= 1;
        }
        let corrupt = (self.chance(imp.corrupt) && len > 14).then(|| {
            // After the Ethernet header, so the frame still reaches the far end.
            let offset = 14 + self.rng.below(len - 14);
            (offset, 1u8 << self.rng.below(8))
        });
        if copies == 0 {
            return Fate {
                copies,
                at_ns: now_ns,
                corrupt: None,
            };
        }
        let mut start = now_ns;
        if imp.rate > 0 {
            let tx = (len as u128 * 8 * 1_000_000_000 / u128::from(imp.rate)) as u64;
            start = start.max(self.line_free_ns) + tx;
            self.line_free_ns = start;
        }
        let reordered = self.chance(imp.reorder);
        if reordered {
            return Fate {
                copies,
                at_ns: start,
                corrupt,
            };
        }
        let mut delay = imp.delay_us as f64 * 1e3;
        if imp.jitter_us > 0 {
            // AR(1): correlated samples with the same standard deviation.
            let c = f64::from(imp.jitter_correlation) / f64::from(ALL);
            let z = c * self.jitter_last + (1.0 - c * c).sqrt() * self.rng.normal();
            self.jitter_last = z;
            delay = (delay + z * imp.jitter_us as f64 * 1e3).max(0.0);
        }
        let at = (start + delay as u64).max(self.last_ns);
        self.last_ns = at;
        Fate {
            copies,
            at_ns: at,
            corrupt,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn imp(s: &str) -> Impairment {
        s.parse().unwrap()
    }

    #[test]
    fn text_form_round_trips() {
        let i = imp("delay=20ms jitter=2ms jitter-correlation=25% loss=1% rate=100mbit");
        assert_eq!(i.delay_us, 20_000);
        assert_eq!(i.jitter_us, 2_000);
        assert_eq!(i.loss, 10_000);
        assert_eq!(i.rate, 100_000_000);
        assert_eq!(
            i.to_string(),
            "delay=20ms jitter=2ms jitter-correlation=25% loss=1% rate=100mbit"
        );
        assert_eq!(imp(&i.to_string()), i);
        for s in [
            "delay=1.5ms",
            "delay=250us",
            "delay=2s",
            "loss=0.25%",
            "rate=64kbit",
            "rate=1.5gbit",
        ] {
            assert_eq!(imp(s).to_string(), s);
        }
        assert_eq!(imp("none"), Impairment::default());
        assert_eq!(Impairment::default().to_string(), "none");
        let l: LinkImpairment = "a->b: delay=20ms; b->a: none".parse().unwrap();
        assert_eq!(l.a_to_b.delay_us, 20_000);
        assert!(l.b_to_a.is_none());
        assert_eq!(l.to_string(), "a->b: delay=20ms; b->a: none");
        assert_eq!(l.to_string().parse::<LinkImpairment>().unwrap(), l);
        let both: LinkImpairment = "loss=1%".parse().unwrap();
        assert_eq!(both.to_string(), "loss=1%");
        assert_eq!(both.swapped(), both);
    }

    #[test]
    fn bad_input_names_the_field_the_value_and_the_range() {
        let cases = [
            ("delay=-5ms", "delay", "negative"),
            ("delay=11s", "delay", "0 to 10s"),
            ("delay=20", "delay", "us, ms or s"),
            ("loss=101%", "loss", "0% to 100%"),
            ("loss=abc", "loss", "number"),
            ("jitter=2ms", "jitter", "needs a delay"),
            ("reorder=25%", "reorder", "needs a delay"),
            ("rate=100furlongs", "rate", "bit, kbit, mbit or gbit"),
            ("rate=0mbit", "rate", "must not be zero"),
            ("rate=200gbit", "rate", "8kbit to 100gbit"),
            ("loss-correlation=25%", "loss-correlation", "needs a loss"),
            ("speed=1", "speed", "delay, jitter"),
            ("delay", "impairment", "key=value"),
        ];
        for (input, field, hint) in cases {
            let e = input.parse::<Impairment>().unwrap_err();
            assert_eq!(e.field, field, "{input}: {e}");
            assert!(e.to_string().contains(hint), "{input}: {e}");
        }
        // netlab's numbers: milliseconds, percent, kbit/s.
        let mut i = Impairment::default();
        i.set("delay", "10", BareUnits::Netlab).unwrap();
        i.set("loss", "2", BareUnits::Netlab).unwrap();
        i.set("rate", "10000", BareUnits::Netlab).unwrap();
        assert_eq!(i.to_string(), "delay=10ms loss=2% rate=10mbit");
    }

    #[test]
    fn files_write_it_three_ways() {
        let y = |s: &str| from_yaml(&serde_yaml_ng::from_str(s).unwrap());
        let both = y("{delay: 20ms, loss: 1}").unwrap();
        assert_eq!(both.to_string(), "delay=20ms loss=1%");
        let dirs = y("{a->b: {delay: 5}, b->a: {rate: 10mbit}}").unwrap();
        assert_eq!(dirs.to_string(), "a->b: delay=5ms; b->a: rate=10mbit");
        assert_eq!(y("'delay=1ms'").unwrap().to_string(), "delay=1ms");
        let e = y("{a->b: {loss: 120}}").unwrap_err();
        assert_eq!(e.field, "impair.a->b.loss");
        assert!(e.to_string().contains("0% to 100%"), "{e}");
        let e = y("{a->b: {jitter: 2}}").unwrap_err();
        assert!(e.to_string().contains("needs a delay"), "{e}");
        let e = y("{a-b: {delay: 2}, b->a: {}}").unwrap_err();
        assert!(e.to_string().contains("a->b or b->a"), "{e}");
        assert!(y("[1, 2]").is_err());
    }

    fn run(imp: Impairment, frames: usize, gap_ns: u64, len: usize) -> Vec<Fate> {
        let mut s = Shaper::new(imp, 7);
        (0..frames)
            .map(|i| s.admit(i as u64 * gap_ns, len))
            .collect()
    }

    fn share(fates: &[Fate], f: impl Fn(&Fate) -> bool) -> f64 {
        fates.iter().filter(|x| f(x)).count() as f64 / fates.len() as f64
    }

    #[test]
    fn nothing_set_changes_nothing() {
        let fates = run(Impairment::default(), 1000, 1000, 100);
        assert!(
            fates
                .iter()
                .enumerate()
                .all(|(i, f)| f.copies == 1 && f.at_ns == i as u64 * 1000 && f.corrupt.is_none())
        );
    }

    #[test]
    fn loss_duplicate_and_corrupt_hit_their_share() {
        let fates = run(imp("loss=10%"), 100_000, 1000, 100);
        let lost = share(&fates, |f| f.copies == 0);
        assert!((lost - 0.10).abs() < 0.005, "{lost}");
        let fates = run(imp("duplicate=5%"), 100_000, 1000, 100);
        let dup = share(&fates, |f| f.copies == 2);
        assert!((dup - 0.05).abs() < 0.005, "{dup}");
        let fates = run(imp("corrupt=5%"), 100_000, 1000, 100);
        let bad = share(&fates, |f| f.corrupt.is_some());
        assert!((bad - 0.05).abs() < 0.005, "{bad}");
        assert!(
            fates
                .iter()
                .filter_map(|f| f.corrupt)
                .all(|(off, mask)| (14..100).contains(&off) && mask.count_ones() == 1)
        );
    }

    #[test]
    fn correlated_loss_comes_in_bursts_at_the_same_average() {
        let plain = run(imp("loss=20%"), 100_000, 1000, 100);
        let bursty = run(imp("loss=20% loss-correlation=90%"), 100_000, 1000, 100);
        let runs = |f: &[Fate]| {
            f.windows(2)
                .filter(|w| w[0].copies == 0 && w[1].copies == 0)
                .count()
        };
        assert!(
            runs(&bursty) > 3 * runs(&plain),
            "{} {}",
            runs(&bursty),
            runs(&plain)
        );
        let lost = share(&bursty, |f| f.copies == 0);
        assert!((lost - 0.20).abs() < 0.02, "{lost}");
    }

    #[test]
    fn delay_and_jitter_keep_order_and_spread() {
        let fates = run(imp("delay=20ms"), 100, 1_000_000, 100);
        assert!(
            fates
                .iter()
                .enumerate()
                .all(|(i, f)| f.at_ns == i as u64 * 1_000_000 + 20_000_000)
        );
        let fates = run(imp("delay=20ms jitter=5ms"), 10_000, 100_000_000, 100);
        let delays: Vec<f64> = fates
            .iter()
            .enumerate()
            .map(|(i, f)| (f.at_ns - i as u64 * 100_000_000) as f64 / 1e6)
            .collect();
        let mean = delays.iter().sum::<f64>() / delays.len() as f64;
        let sd =
            (delays.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / delays.len() as f64).sqrt();
        assert!((mean - 20.0).abs() < 0.3, "{mean}");
        assert!((sd - 5.0).abs() < 0.3, "{sd}");
        // Frames closer than the jitter never pass each other.
        let fates = run(imp("delay=20ms jitter=5ms"), 10_000, 100_000, 100);
        assert!(fates.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
    }

    #[test]
    fn reorder_sends_its_share_at_once() {
        let fates = run(imp("delay=10ms reorder=25%"), 10_000, 1_000_000, 100);
        let at_once = fates
            .iter()
            .enumerate()
            .filter(|(i, f)| f.at_ns == *i as u64 * 1_000_000)
            .count() as f64
            / fates.len() as f64;
        // A frame sent at once passes the delayed ones before it.
        assert!(fates.windows(2).any(|w| w[1].at_ns < w[0].at_ns));
        assert!((at_once - 0.25).abs() < 0.02, "{at_once}");
    }

    #[test]
    fn rate_spaces_frames_by_their_serialisation_time() {
        // 1250-byte frames at 10 Mbit/s take 1 ms each; a burst leaves 1 ms apart.
        let fates = run(imp("rate=10mbit"), 100, 0, 1250);
        for (i, f) in fates.iter().enumerate() {
            assert_eq!(f.at_ns, (i as u64 + 1) * 1_000_000);
        }
        // Frames slower than the line are not held.
        let fates = run(imp("rate=10mbit"), 10, 5_000_000, 1250);
        assert!(
            fates
                .iter()
                .enumerate()
                .all(|(i, f)| f.at_ns == i as u64 * 5_000_000 + 1_000_000)
        );
    }
}
