//! Text that came from elsewhere (a peer, a tracker, a file name), made
//! safe to show on a terminal and to keep as a name.
//!
//! One rule for everything shown: control characters (C0, DEL, C1: ESC,
//! BEL, OSC and friends), bidirectional overrides and isolates, and
//! invisible characters (zero-width spaces and joiners, word joiners, BOMs,
//! tag characters, line separators) are never printed raw; [`escape`]
//! writes each as a visible `\u{…}`. Names we accept or store ([`is_hidden`]
//! is the test) refuse them or replace them, so `invoice\u{202e}fdp.exe`
//! can neither pose as `invoice.pdf` nor sit beside a real peer's name.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` changes how text around it looks, or is not seen at all:
/// controls, bidi overrides and isolates, and invisible format characters.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00ad}'               // soft hyphen
            | '\u{034f}'             // combining grapheme joiner
            | '\u{061c}'             // Arabic letter mark
            | '\u{115f}' | '\u{1160}' // Hangul fillers
            | '\u{17b4}' | '\u{17b5}'
            | '\u{180b}'..='\u{180f}'
            | '\u{200b}'..='\u{200f}' // zero-width space/joiners, LRM, RLM
            | '\u{2028}'..='\u{202e}' // line/paragraph separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{206f}' // word joiner, invisible operators, bidi isolates
            | '\u{3164}'             // Hangul filler
            | '\u{feff}'             // BOM / zero-width no-break space
            | '\u{ffa0}'
            | '\u{fff9}'..='\u{fffb}' // interlinear annotations
            | '\u{1bca0}'..='\u{1bca3}'
            | '\u{1d173}'..='\u{1d17a}'
            | '\u{e0000}'..='\u{e007f}' // tag characters
        )
}

/// `s` as it may be shown: every [`is_hidden`] character written as
/// `\u{…}`. Borrowed when nothing needed escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_hidden) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_hidden(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` escaped and cut to at most `max` characters (an ellipsis marks the
/// cut): for text from the network that is shown or kept in a message.
pub fn bounded(s: &str, max: usize) -> String {
    let escaped = escape(s);
    if escaped.chars().count() <= max {
        return escaped.into_owned();
    }
    let mut out: String = escaped.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Displays its text escaped (see [`escape`]): `format!("{}", Escaped(name))`.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_and_bidi_are_made_visible() {
        assert_eq!(escape("report.pdf"), "report.pdf");
        assert!(matches!(escape("plain é ü 東京"), Cow::Borrowed(_)));
        for (raw, shown) in [
            ("\x1b[2J", "\\u{1b}[2J"),
            ("\x1b]52;c;aGk=\x07", "\\u{1b}]52;c;aGk=\\u{7}"),
            ("a\u{9b}b", "a\\u{9b}b"),
            ("invoice\u{202e}fdp.exe", "invoice\\u{202e}fdp.exe"),
            ("bob\u{200b}", "bob\\u{200b}"),
            ("x\u{2066}y\u{2069}", "x\\u{2066}y\\u{2069}"),
            ("\u{feff}name", "\\u{feff}name"),
            ("tag\u{e0041}", "tag\\u{e0041}"),
            ("line\nbreak\r", "line\\u{a}break\\u{d}"),
        ] {
            assert_eq!(escape(raw), shown, "{raw:?}");
            assert!(!escape(raw).chars().any(is_hidden));
        }
    }

    #[test]
    fn bounded_cuts_after_escaping() {
        assert_eq!(bounded("abc", 3), "abc");
        assert_eq!(bounded("abcdef", 4), "abc…");
        assert_eq!(bounded(&"\x07".repeat(100), 10).chars().count(), 10);
    }
}
