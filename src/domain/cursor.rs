//! Opaque page cursors for the listing APIs: a listing's name and the
//! position of the last item of a page (its time and id), in base64url.
//! Clients pass them back as they are; a cursor of another listing, or one
//! edited by hand, is refused rather than misread.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Where a newest-first page ends: items strictly older come next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub at: u64,
    pub id: u128,
}

pub fn encode(listing: &str, p: Position) -> String {
    URL_SAFE_NO_PAD.encode(format!("{listing}:{}:{:x}", p.at, p.id))
}

/// `None` for anything `encode` did not make for `listing`.
pub fn decode(listing: &str, text: &str) -> Option<Position> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let rest = text.strip_prefix(listing)?.strip_prefix(':')?;
    let (at, id) = rest.split_once(':')?;
    Some(Position { at: at.parse().ok()?, id: u128::from_str_radix(id, 16).ok()? })
}

/// One newest-first page of `items` (any order) after `after`: the page and
/// the cursor of the next one, if there are more.
pub fn page<T>(
    listing: &str,
    mut items: Vec<T>,
    position: impl Fn(&T) -> Position,
    after: Option<Position>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    items.retain(|i| after.is_none_or(|a| position(i) < a));
    items.sort_by_key(|i| std::cmp::Reverse(position(i)));
    let next = (items.len() > limit && limit > 0).then(|| encode(listing, position(&items[limit - 1])));
    items.truncate(limit);
    (items, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_only_for_its_own_listing() {
        let p = Position { at: 1_700_000_000, id: 0xabc };
        assert_eq!(decode("campaigns", &encode("campaigns", p)), Some(p));
        assert_eq!(decode("clicks", &encode("campaigns", p)), None);
        assert_eq!(decode("campaigns", "not a cursor"), None);
    }

    #[test]
    fn pages_walk_every_item_once_newest_first() {
        let items: Vec<u64> = (0..7).collect();
        let pos = |i: &u64| Position { at: *i / 2, id: u128::from(*i) };
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = page("t", items.clone(), pos, after, 3);
            seen.extend(page);
            match next {
                Some(c) => after = decode("t", &c),
                None => break,
            }
        }
        assert_eq!(seen, vec![6, 5, 4, 3, 2, 1, 0]);
    }
}
