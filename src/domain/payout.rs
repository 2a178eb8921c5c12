//! Payout arithmetic. Money is integer cents; percentages are basis points
//! (hundredths of a percent) so that 12.5 % is exactly 1250, never a float.
//!
//! Bounds: every amount that comes from outside (`revenueCents`, a FIXED
//! campaign's `payoutCents`, a deposit's `amountCents`) is at most
//! [`MAX_CENTS`]; a campaign's deposits total at most
//! [`MAX_CAMPAIGN_FUNDS_CENTS`], which bounds every campaign balance; sums
//! that no bound can cap (an affiliate's wallet across all campaigns, a
//! campaign's lifetime payout stats) are kept in 128 bits. So no sequence of
//! accepted requests can wrap a total.

use super::model::{Campaign, CompensationModel};
use super::validate::{invalid, Invalid};

/// The most one amount from outside may be: 10^12 cents, ten billion dollars.
pub const MAX_CENTS: u64 = 1_000_000_000_000;

/// The most a campaign's deposits may total: 10^15 cents. Every campaign
/// account (available, escrowed, clearing) is bounded by it, so their i64
/// columns keep a margin of nine thousand times.
pub const MAX_CAMPAIGN_FUNDS_CENTS: i64 = 1_000_000_000_000_000;

/// `value` as an amount of cents from outside: `min` to [`MAX_CENTS`].
pub fn bounded_cents(field: &str, value: u64, min: u64) -> Result<u64, Invalid> {
    if value < min || value > MAX_CENTS {
        return Err(invalid(field, format!("must be a whole number of cents from {min} to {MAX_CENTS}")));
    }
    Ok(value)
}

/// Parses a percentage such as `20` or `12.5` into basis points. At most two
/// decimals and 0 < p <= 100; anything else is a validation error the caller
/// reports against the field.
pub fn percentage_to_bp(text: &str) -> Result<u32, &'static str> {
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (!frac.is_empty() && !digits(frac)) {
        return Err("must be a number between 0 and 100");
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 2 {
        return Err("must have at most two decimals");
    }
    let whole: u64 = whole.parse().map_err(|_| "must be a number between 0 and 100")?;
    let frac_bp: u64 = format!("{frac:0<2}").parse().unwrap_or(0);
    let bp = whole.saturating_mul(100).saturating_add(frac_bp);
    if bp == 0 || bp > 10_000 {
        return Err("must be greater than 0 and at most 100");
    }
    Ok(bp as u32)
}

/// Renders basis points back as the percentage a person wrote (1250 → 12.5).
pub fn bp_to_percentage(bp: u32) -> f64 {
    f64::from(bp) / 100.0
}

/// revenueCents × percentage ÷ 100, rounded half up to the nearest cent.
/// `revenue_cents * bp` fits easily in u128 for any u64 revenue.
pub fn rev_share_cents(revenue_cents: u64, bp: u32) -> u64 {
    let scaled = u128::from(revenue_cents) * u128::from(bp);
    ((scaled + 5_000) / 10_000) as u64
}

/// `revenueCents` as sent: absent, or whole cents from 0 to `MAX_CENTS`.
pub fn revenue_cents(sent: Option<i64>) -> Result<Option<u64>, Invalid> {
    match sent {
        Some(r) if r < 0 => Err(invalid("revenueCents", "must be zero or more cents")),
        Some(r) => Ok(Some(bounded_cents("revenueCents", r as u64, 0)?)),
        None => Ok(None),
    }
}

/// What a verified lead pays: the fixed payout, or the share of `revenue`.
pub fn payout_for(campaign: &Campaign, revenue: Option<u64>) -> Result<u64, Invalid> {
    match campaign.compensation_model {
        CompensationModel::Fixed => Ok(campaign.payout_cents.unwrap_or(0)),
        CompensationModel::RevShare => {
            let revenue = revenue
                .ok_or_else(|| invalid("revenueCents", "is required for REV_SHARE (percent-of-sale) campaigns"))?;
            Ok(rev_share_cents(revenue, campaign.payout_bp.unwrap_or(0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_example_pays_three_dollars_on_a_1499_sale_at_20_percent() {
        assert_eq!(rev_share_cents(1499, percentage_to_bp("20").unwrap()), 300);
    }

    #[test]
    fn half_a_cent_rounds_up_and_less_rounds_down() {
        // 10 % of 5 cents is 0.5 → 1; 10 % of 4 cents is 0.4 → 0.
        assert_eq!(rev_share_cents(5, 1000), 1);
        assert_eq!(rev_share_cents(4, 1000), 0);
        // 12.5 % of 9900 is 1237.5 → 1238; of 9901 is 1237.625 → 1238.
        assert_eq!(rev_share_cents(9900, 1250), 1238);
        assert_eq!(rev_share_cents(9901, 1250), 1238);
        // 33.33 % of 100 is 33.33 → 33.
        assert_eq!(rev_share_cents(100, 3333), 33);
        assert_eq!(rev_share_cents(0, 2000), 0);
        assert_eq!(rev_share_cents(u64::MAX, 10_000), u64::MAX);
        assert_eq!(rev_share_cents(MAX_CENTS, 10_000), MAX_CENTS);
    }

    #[test]
    fn amounts_from_outside_are_bounded_by_ten_to_the_twelve_cents() {
        assert_eq!(bounded_cents("revenueCents", MAX_CENTS, 0), Ok(MAX_CENTS));
        assert_eq!(bounded_cents("revenueCents", 0, 0), Ok(0));
        let over = bounded_cents("payoutCents", MAX_CENTS + 1, 1).unwrap_err();
        assert_eq!(over.field, "payoutCents");
        assert!(over.message.contains("1000000000000"), "{over}");
        assert!(bounded_cents("payoutCents", 0, 1).is_err());
        assert!(bounded_cents("amountCents", 1 << 63, 1).is_err());
    }

    #[test]
    fn percentages_parse_exactly_to_basis_points() {
        assert_eq!(percentage_to_bp("12.5"), Ok(1250));
        assert_eq!(percentage_to_bp("100"), Ok(10_000));
        assert_eq!(percentage_to_bp("0.01"), Ok(1));
        assert_eq!(percentage_to_bp("20.50"), Ok(2050));
        assert!(percentage_to_bp("0").is_err());
        assert!(percentage_to_bp("100.01").is_err());
        assert!(percentage_to_bp("12.345").is_err());
        assert!(percentage_to_bp("-5").is_err());
        assert!(percentage_to_bp("1e2").is_err());
        assert!(percentage_to_bp("").is_err());
    }
}
