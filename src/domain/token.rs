//! Click tokens: the opaque `irw_id` a redirect appends and a conversion sends back.
//!
//! Layout before base64url: version (1) | click id (16) | campaign (8) |
//! affiliate (8) | issued-at unix seconds (8) | flags (1, version 2 only) |
//! HMAC-SHA256 truncated to 16. Verifying needs only the keys, never the
//! store, so the conversion path can reject forgeries before touching an
//! actor. Version 2 adds the flags (bit 0: the click was flagged as a bot or
//! a HEAD request), so a conversion knows without a read; version 1 tokens
//! handed out before it still verify, unflagged.
//!
//! Version 3 is version 2 with the click's sub-IDs after the flags
//! (`SubIds::encode`), encrypted with a keystream of HMAC-SHA256 blocks under
//! the signing key and the click id (encrypt, then MAC): the conversion gets
//! them without a store read, and the landing page, which sees the token,
//! does not. Clicks without sub-IDs keep getting version 2 tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::ids::{AffiliateId, CampaignId, ClickId};
use super::subids::SubIds;

const VERSION: u8 = 2;
const WITH_SUBS: u8 = 3;
const V1_BODY_LEN: usize = 1 + 16 + 8 + 8 + 8;
const BODY_LEN: usize = V1_BODY_LEN + 1;
const MAC_LEN: usize = 16;
const FLAGGED: u8 = 1;
/// Bit 1: the link's query carried a paid-search or paid-social click id.
const PAID: u8 = 2;
/// Characters of a version 2 token: 58 bytes in unpadded base64.
pub const TOKEN_LEN: usize = (BODY_LEN + MAC_LEN) * 4 / 3 + 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClickClaims {
    pub click: ClickId,
    pub campaign: CampaignId,
    pub affiliate: AffiliateId,
    pub issued_at: u64,
    /// The click was flagged (bot user agent or HEAD request).
    pub flagged: bool,
    /// The link's query carried a paid-traffic click id (`gclid`, …).
    pub paid: bool,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not base64url, wrong length or unknown version: never one of ours.
    #[error("the click token is malformed")]
    Malformed,
    /// Well-formed, but no current key signed it (forged, tampered, or signed
    /// by a key that has since been retired).
    #[error("the click token signature does not verify")]
    BadSignature,
}

/// Signing keys, newest first: the first signs, every one verifies, so keys
/// rotate by prepending a new one and dropping the oldest later.
/// Each key is kept as an HMAC state that has absorbed it already: a token
/// clones one instead of hashing the key again (two SHA-256 blocks saved on
/// every redirect).
#[derive(Clone)]
pub struct TokenKeys {
    keys: Vec<Hmac<Sha256>>,
}

impl TokenKeys {
    pub fn new(keys: Vec<Vec<u8>>) -> Self {
        assert!(!keys.is_empty(), "at least one token key is required");
        let keyed = keys.iter().map(|k| Hmac::<Sha256>::new_from_slice(k).expect("HMAC accepts any key length"));
        Self { keys: keyed.collect() }
    }

    pub fn sign(&self, claims: &ClickClaims) -> String {
        let mut out = String::with_capacity(TOKEN_LEN);
        self.sign_into(claims, &mut out);
        out
    }

    /// Appends the token to `out`: no allocation of its own.
    pub fn sign_into(&self, claims: &ClickClaims, out: &mut String) {
        URL_SAFE_NO_PAD.encode_string(self.signed(claims), out);
    }

    /// The token on the stack (the redirect copies it into its Location).
    pub fn sign_array(&self, claims: &ClickClaims) -> [u8; TOKEN_LEN] {
        let mut out = [0u8; TOKEN_LEN];
        let n = URL_SAFE_NO_PAD.encode_slice(self.signed(claims), &mut out).expect("TOKEN_LEN fits the token");
        debug_assert_eq!(n, TOKEN_LEN);
        out
    }

    fn signed(&self, claims: &ClickClaims) -> [u8; BODY_LEN + MAC_LEN] {
        let mut raw = [0u8; BODY_LEN + MAC_LEN];
        raw[0] = VERSION;
        raw[1..17].copy_from_slice(&claims.click.0.to_be_bytes());
        raw[17..25].copy_from_slice(&claims.campaign.0.to_be_bytes());
        raw[25..33].copy_from_slice(&claims.affiliate.0.to_be_bytes());
        raw[33..41].copy_from_slice(&claims.issued_at.to_be_bytes());
        raw[41] = if claims.flagged { FLAGGED } else { 0 } | if claims.paid { PAID } else { 0 };
        let tag = mac(&self.keys[0], &raw[..BODY_LEN]).finalize().into_bytes();
        raw[BODY_LEN..].copy_from_slice(&tag[..MAC_LEN]);
        raw
    }

    /// A click's token: version 2 without sub-IDs (fixed length, on the
    /// stack), version 3 with them.
    pub fn sign_with_subs(&self, claims: &ClickClaims, subs: &SubIds) -> String {
        if subs.is_empty() {
            return self.sign(claims);
        }
        let mut raw = self.signed(claims)[..BODY_LEN].to_vec();
        raw[0] = WITH_SUBS;
        subs.encode(&mut raw);
        keystream(&self.keys[0], claims.click, &mut raw[BODY_LEN..]);
        let tag = mac(&self.keys[0], &raw).finalize().into_bytes();
        raw.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn verify(&self, token: &str) -> Result<ClickClaims, TokenError> {
        self.verify_with_subs(token).map(|(claims, _)| claims)
    }

    /// The claims and the sub-IDs a version 3 token carries (none otherwise).
    pub fn verify_with_subs(&self, token: &str) -> Result<(ClickClaims, SubIds), TokenError> {
        let raw = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| TokenError::Malformed)?;
        let fixed = match raw.first() {
            Some(1) => raw.len() == V1_BODY_LEN + MAC_LEN,
            Some(&VERSION) => raw.len() == BODY_LEN + MAC_LEN,
            Some(&WITH_SUBS) => raw.len() > BODY_LEN + MAC_LEN,
            _ => false,
        };
        if !fixed {
            return Err(TokenError::Malformed);
        }
        let (body, tag) = raw.split_at(raw.len() - MAC_LEN);
        let key = self.keys.iter().find(|key| mac(key, body).verify_truncated_left(tag).is_ok());
        let key = key.ok_or(TokenError::BadSignature)?;
        let claims = ClickClaims {
            click: ClickId(u128::from_be_bytes(body[1..17].try_into().unwrap())),
            campaign: CampaignId(u64::from_be_bytes(body[17..25].try_into().unwrap())),
            affiliate: AffiliateId(u64::from_be_bytes(body[25..33].try_into().unwrap())),
            issued_at: u64::from_be_bytes(body[33..41].try_into().unwrap()),
            flagged: body.get(41).is_some_and(|f| f & FLAGGED != 0),
            paid: body.get(41).is_some_and(|f| f & PAID != 0),
        };
        if body.len() <= BODY_LEN {
            return Ok((claims, SubIds::default()));
        }
        let mut section = body[BODY_LEN..].to_vec();
        keystream(key, claims.click, &mut section);
        match SubIds::decode(&section) {
            Some((subs, used)) if used == section.len() => Ok((claims, subs)),
            // Signed by us yet unreadable: only a bug could make one.
            _ => Err(TokenError::Malformed),
        }
    }
}

impl TokenKeys {
    /// The full HMAC-SHA256 tag of `body` under the signing key, for other
    /// token kinds (referral tokens) that carry their own version byte.
    pub fn tag(&self, body: &[u8]) -> [u8; 32] {
        mac(&self.keys[0], body).finalize().into_bytes().into()
    }

    /// Whether any current key produced `tag` over `body` (constant time).
    pub fn verifies(&self, body: &[u8], tag: &[u8]) -> bool {
        self.keys.iter().any(|key| mac(key, body).verify_slice(tag).is_ok())
    }
}

/// XORs `data` with HMAC(key, "subids" | click | block number) blocks:
/// a keystream unique to each click, since click ids are never reused.
fn keystream(key: &Hmac<Sha256>, click: ClickId, data: &mut [u8]) {
    for (n, chunk) in data.chunks_mut(32).enumerate() {
        let mut block = key.clone();
        block.update(b"clickledger subids");
        block.update(&click.0.to_be_bytes());
        block.update(&(n as u32).to_be_bytes());
        let pad = block.finalize().into_bytes();
        chunk.iter_mut().zip(pad.iter()).for_each(|(b, p)| *b ^= p);
    }
}

fn mac(key: &Hmac<Sha256>, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = key.clone();
    mac.update(body);
    mac
}

/// Whether a click issued at `issued_at` is still inside a window of `days`.
pub fn within_window(issued_at: u64, now: u64, days: u32) -> bool {
    now <= issued_at.saturating_add(u64::from(days) * 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> ClickClaims {
        let (click, campaign, affiliate) = (ClickId(42), CampaignId(7), AffiliateId(9));
        ClickClaims { click, campaign, affiliate, issued_at: 1_700_000_000, flagged: false, paid: false }
    }

    #[test]
    fn a_flagged_click_says_so_in_its_token_and_the_flag_is_signed() {
        let keys = TokenKeys::new(vec![b"k1".to_vec()]);
        let flagged = ClickClaims { flagged: true, ..claims() };
        assert_eq!(keys.verify(&keys.sign(&flagged)), Ok(flagged));
        let mut raw = URL_SAFE_NO_PAD.decode(keys.sign(&flagged)).unwrap();
        raw[41] = 0; // clear the flag
        assert_eq!(keys.verify(&URL_SAFE_NO_PAD.encode(raw)), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_version_1_token_from_before_the_flags_still_verifies_unflagged() {
        let keys = TokenKeys::new(vec![b"k1".to_vec()]);
        let c = claims();
        let mut raw = vec![1u8];
        raw.extend_from_slice(&c.click.0.to_be_bytes());
        raw.extend_from_slice(&c.campaign.0.to_be_bytes());
        raw.extend_from_slice(&c.affiliate.0.to_be_bytes());
        raw.extend_from_slice(&c.issued_at.to_be_bytes());
        let tag = mac(&Hmac::<Sha256>::new_from_slice(b"k1").unwrap(), &raw).finalize().into_bytes();
        raw.extend_from_slice(&tag[..MAC_LEN]);
        assert_eq!(keys.verify(&URL_SAFE_NO_PAD.encode(raw)), Ok(c));
    }

    #[test]
    fn sub_ids_ride_in_the_token_encrypted_and_signed() {
        let keys = TokenKeys::new(vec![b"k1".to_vec()]);
        let subs = SubIds { sub1: Some("fb-campaign-77".into()), sub4: Some("€".into()), ..Default::default() };
        let token = keys.sign_with_subs(&claims(), &subs);
        assert_eq!(keys.verify_with_subs(&token), Ok((claims(), subs)));
        let raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        assert!(!raw.windows(14).any(|w| w == b"fb-campaign-77"), "the landing page must not read them");
        let mut tampered = raw.clone();
        tampered[BODY_LEN + 2] ^= 1;
        assert_eq!(keys.verify(&URL_SAFE_NO_PAD.encode(tampered)), Err(TokenError::BadSignature));
        let rotated = TokenKeys::new(vec![b"k2".to_vec(), b"k1".to_vec()]);
        assert_eq!(rotated.verify_with_subs(&token).unwrap().1.get(0), Some("fb-campaign-77"));
    }

    #[test]
    fn a_click_without_sub_ids_keeps_its_short_token() {
        let keys = TokenKeys::new(vec![b"k1".to_vec()]);
        assert_eq!(keys.sign_with_subs(&claims(), &SubIds::default()).len(), TOKEN_LEN);
    }

    #[test]
    fn a_signed_token_verifies_to_the_same_claims() {
        let keys = TokenKeys::new(vec![b"k1".to_vec()]);
        assert_eq!(keys.verify(&keys.sign(&claims())), Ok(claims()));
    }

    #[test]
    fn tokens_are_url_safe() {
        let token = TokenKeys::new(vec![b"k1".to_vec()]).sign(&claims());
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn a_tampered_token_fails_its_signature() {
        let keys = TokenKeys::new(vec![b"k1".to_vec()]);
        let mut raw = URL_SAFE_NO_PAD.decode(keys.sign(&claims())).unwrap();
        raw[20] ^= 1; // change the campaign
        assert_eq!(keys.verify(&URL_SAFE_NO_PAD.encode(raw)), Err(TokenError::BadSignature));
    }

    #[test]
    fn a_token_from_another_key_fails_and_garbage_is_malformed() {
        let ours = TokenKeys::new(vec![b"ours".to_vec()]);
        let theirs = TokenKeys::new(vec![b"theirs".to_vec()]);
        assert_eq!(ours.verify(&theirs.sign(&claims())), Err(TokenError::BadSignature));
        assert_eq!(ours.verify("not a token"), Err(TokenError::Malformed));
        assert_eq!(ours.verify(""), Err(TokenError::Malformed));
    }

    #[test]
    fn a_rotated_key_still_verifies_old_tokens_while_the_new_key_signs() {
        let old = TokenKeys::new(vec![b"old".to_vec()]);
        let rotated = TokenKeys::new(vec![b"new".to_vec(), b"old".to_vec()]);
        let old_token = old.sign(&claims());
        assert_eq!(rotated.verify(&old_token), Ok(claims()));
        assert!(old.verify(&rotated.sign(&claims())).is_err());
    }

    #[test]
    fn the_window_is_inclusive_of_its_last_second() {
        assert!(within_window(0, 90 * 86_400, 90));
        assert!(!within_window(0, 90 * 86_400 + 1, 90));
    }
}
