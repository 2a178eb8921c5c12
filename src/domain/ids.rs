//! Identifiers: random, prefixed on the wire, plain integers inside.
//!
//! Campaigns, advertisers and affiliates are few, so 64 random bits are plenty.
//! Clicks, conversions and leads count in billions, so they get 128 bits and no
//! two engine nodes ever need to coordinate to mint one.

use std::fmt;
use std::str::FromStr;

/// Bytes from the OS generator. Failure here means the OS cannot give
/// randomness at all, which no request can recover from. Read 4 KiB at a
/// time per thread: an id per click must not cost a system call each (the
/// bytes are the OS's all the same, just fetched ahead, and each is handed
/// out once).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    const POOL: usize = 4096;
    thread_local! {
        static AHEAD: std::cell::RefCell<(Box<[u8; POOL]>, usize)> = std::cell::RefCell::new((Box::new([0; POOL]), POOL));
    }
    let mut buf = [0u8; N];
    if N > POOL / 8 {
        getrandom::fill(&mut buf).expect("the operating system random source failed");
        return buf;
    }
    AHEAD.with_borrow_mut(|(pool, used)| {
        if *used + N > POOL {
            getrandom::fill(&mut pool[..]).expect("the operating system random source failed");
            *used = 0;
        }
        buf.copy_from_slice(&pool[*used..*used + N]);
        // Wiped once handed out, so nothing left in memory can reveal it.
        pool[*used..*used + N].fill(0);
        *used += N;
    });
    buf
}

macro_rules! id_type {
    ($name:ident, $inner:ty, $prefix:literal, $width:literal) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $inner);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn random() -> Self {
                Self(<$inner>::from_be_bytes(random_bytes()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{:0w$x}", $prefix, self.0, w = $width)
            }
        }

        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                let hex = s.strip_prefix($prefix).ok_or(())?;
                if hex.len() != $width || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(());
                }
                <$inner>::from_str_radix(hex, 16).map(Self).map_err(|_| ())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(|_| serde::de::Error::custom(concat!("expected an id like ", $prefix, "…")))
            }
        }
    };
}

id_type!(AdvertiserId, u64, "adv_", 16);
id_type!(AffiliateId, u64, "aff_", 16);
id_type!(CampaignId, u64, "cmp_", 16);
id_type!(ClickId, u128, "clk_", 32);
id_type!(ConversionId, u128, "cnv_", 32);
id_type!(LeadId, u128, "lead_", 32);
id_type!(ReferralId, u128, "ref_", 32);
// A payout shares the 128 bits of the conversion or lead it pays for, so a
// record can have at most one payout and retries find the same one.
id_type!(PayoutId, u128, "pay_", 32);
id_type!(KeyId, u128, "key_", 32);
id_type!(WebhookId, u128, "wh_", 32);
// One event's delivery to one endpoint.
id_type!(DeliveryId, u128, "msg_", 32);

impl WebhookId {
    pub fn new() -> Self {
        Self(time_ordered())
    }
}

impl Default for WebhookId {
    fn default() -> Self {
        Self::new()
    }
}

impl DeliveryId {
    pub fn new() -> Self {
        Self(time_ordered())
    }
}

impl Default for DeliveryId {
    fn default() -> Self {
        Self::new()
    }
}

/// 48 bits of Unix milliseconds, then 80 random bits (the ULID layout): ids
/// sort by creation time, so event tables grow at their right edge instead
/// of rewriting pages all over the tree, and 80 bits keep ids minted in the
/// same millisecond on different nodes apart.
fn time_ordered() -> u128 {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let mut random = [0u8; 16];
    random[6..].copy_from_slice(&random_bytes::<10>());
    (ms & 0xFFFF_FFFF_FFFF) << 80 | u128::from_be_bytes(random)
}

/// A fresh time-ordered 128-bit id (the ULID layout above).
pub fn time_ordered_id() -> u128 {
    time_ordered()
}

impl ClickId {
    pub fn new() -> Self {
        Self(time_ordered())
    }
}

impl Default for ClickId {
    fn default() -> Self {
        Self::new()
    }
}

impl ConversionId {
    pub fn new() -> Self {
        Self(time_ordered())
    }
}

impl Default for ConversionId {
    fn default() -> Self {
        Self::new()
    }
}

impl LeadId {
    pub fn new() -> Self {
        Self(time_ordered())
    }
}

impl ReferralId {
    pub fn new() -> Self {
        Self(time_ordered())
    }
}

impl Default for ReferralId {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyId {
    pub fn new() -> Self {
        Self(time_ordered())
    }
}

impl Default for KeyId {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for LeadId {
    fn default() -> Self {
        Self::new()
    }
}

/// Base62 alphabet for codes and keys a person may type or read aloud.
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A random base62 string of `len` characters (rejection sampling keeps it uniform).
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes::<32>() {
            if b < 248 && out.len() < len {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// Tracking codes look like the seed's `7KpT4mQa`: 8 base62 characters, ~47 bits.
pub fn new_tracking_code() -> String {
    random_base62(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_survives_a_round_trip_through_its_text_form() {
        let id = ClickId::random();
        assert_eq!(id.to_string().parse::<ClickId>(), Ok(id));
        assert!(id.to_string().starts_with("clk_"));
    }

    #[test]
    fn an_id_with_the_wrong_prefix_or_length_is_rejected() {
        assert!("cmp_00".parse::<CampaignId>().is_err());
        assert!("aff_0000000000000001".parse::<CampaignId>().is_err());
        assert!("cmp_000000000000000g".parse::<CampaignId>().is_err());
        assert_eq!("cmp_0000000000000001".parse::<CampaignId>(), Ok(CampaignId(1)));
    }

    #[test]
    fn event_ids_sort_by_creation_time() {
        let first = ClickId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = ClickId::new();
        assert!(first < second);
        assert_ne!(ClickId::new(), ClickId::new());
    }

    #[test]
    fn tracking_codes_are_eight_base62_characters() {
        let code = new_tracking_code();
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
