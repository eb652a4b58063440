//! The page and its assets, compiled into the binary: nothing is fetched
//! from anywhere else at run time, and there is no build step (plain
//! HTML, CSS and JavaScript, edited as they are served).

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const ICON: &str = include_str!("../assets/icon.svg");

/// Every asset with its type, by name under `/assets/`.
const ALL: [(&str, &str, &str); 3] = [
    ("app.js", APP_JS, "text/javascript; charset=utf-8"),
    ("app.css", APP_CSS, "text/css; charset=utf-8"),
    ("icon.svg", ICON, "image/svg+xml"),
];

/// The page, with the session's CSRF token (hex, so nothing to escape)
/// and whether it must ask for the password first.
pub fn index(csrf: &str, login: bool) -> String {
    debug_assert!(csrf.bytes().all(|b| b.is_ascii_hexdigit()));
    INDEX
        .replace("{{csrf}}", csrf)
        .replace("{{login}}", if login { "1" } else { "0" })
}

/// An asset and its content type.
pub fn get(name: &str) -> Option<(&'static str, &'static str)> {
    ALL.iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, body, mime)| (*body, *mime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_assets_stay_small_and_have_no_inline_script_or_remote_url() {
        let total: usize = INDEX.len() + ALL.iter().map(|(_, b, _)| b.len()).sum::<usize>();
        assert!(total < 200 * 1024, "assets are {total} bytes");
        // The CSP forbids inline script: the page may only load its own.
        let scripts: Vec<&str> = INDEX
            .match_indices("<script")
            .map(|(i, _)| &INDEX[i..])
            .collect();
        assert_eq!(scripts.len(), 1);
        assert!(scripts[0].starts_with("<script src=\"/assets/app.js\""));
        for inline in [
            "onclick=",
            "onload=",
            "onerror=",
            "onsubmit=",
            "onchange=",
            "javascript:",
        ] {
            assert!(
                !INDEX.contains(inline),
                "the page has an inline handler {inline}"
            );
        }
        // Nothing is loaded from elsewhere (the page's only URL is the
        // tracker field's example; the icon names its XML namespace).
        for remote in [
            "src=\"http",
            "href=\"http",
            "url(http",
            "url(\"http",
            "@import",
        ] {
            assert!(
                !INDEX.contains(remote) && !APP_CSS.contains(remote),
                "{remote}"
            );
        }
        assert!(!APP_JS.contains("http://") && !APP_JS.contains("https://"));
        for (name, body, _) in ALL.iter().chain([&("index.html", INDEX, "")]) {
            assert!(
                !body.contains("innerHTML"),
                "{name} writes HTML from strings"
            );
        }
    }

    #[test]
    fn the_page_carries_its_token() {
        let p = index("abc123", false);
        assert!(p.contains(r#"content="abc123""#));
        assert!(p.contains(r#"name="shoal-login" content="0""#));
        assert!(index("", true).contains(r#"name="shoal-login" content="1""#));
    }
}
