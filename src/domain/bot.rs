//! Which requests are not people. Such clicks are still logged (ad networks
//! audit them) but flagged and left out of the click count.
//!
//! The patterns are the `isbot` crate's (300+ crawlers, link previewers,
//! monitors, headless browsers and HTTP libraries, checked by its own suite
//! against 12k bot and 180k browser user agents), compiled once into one
//! regex; they are updated with `cargo update -p isbot`. On top: a request
//! with no user agent at all is a bot (browsers always send one).

use std::sync::LazyLock;

static BOTS: LazyLock<isbot::Bots> = LazyLock::new(isbot::Bots::default);

pub fn is_bot(user_agent: &str) -> bool {
    user_agent.trim().is_empty() || BOTS.is_bot(user_agent)
}

#[cfg(test)]
mod tests {
    use super::is_bot;

    #[test]
    fn browsers_are_people_and_crawlers_are_not() {
        assert!(!is_bot("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Safari/605.1.15"));
        assert!(!is_bot(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
        ));
        assert!(!is_bot("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"));
        assert!(is_bot("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"));
        assert!(is_bot("Mozilla/5.0 HeadlessChrome/120.0"));
        assert!(is_bot("facebookexternalhit/1.1"));
        assert!(is_bot(""));
    }

    #[test]
    fn http_libraries_are_not_people() {
        for ua in ["curl/8.4.0", "python-requests/2.31", "Go-http-client/1.1", "okhttp/4.9", "Java/17", "axios/1.6"] {
            assert!(is_bot(ua), "{ua}");
        }
        for ua in ["node-fetch/1.0", "Scrapy/2.11", "Wget/1.21", "libwww-perl/6", "Apache-HttpClient/4.5"] {
            assert!(is_bot(ua), "{ua}");
        }
    }
}
