//! Job output made safe to show on the student's terminal.
//!
//! A terminal obeys more than colours: an escape sequence in a job's output can retitle the window, write the
//! clipboard (OSC 52), hide or redraw text, or answer back into the shell on some terminals. A job's output is
//! usually its owner's own, but instructors and TAs read other students' jobs with `rai logs`, so rai does not pass
//! it to a terminal as is. Colour and style (SGR, `ESC [ … m`, which compilers and test runners print) and the
//! ordinary controls (newline, tab, carriage return, backspace) are kept; any other escape is shown as a visible
//! `␛` followed by the rest of the sequence as plain text, other control characters as `^X`, and C1 controls as
//! `�`. Output to a pipe, a file or `--json` is passed through byte for byte.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::sync::OnceLock;

/// Whether stdout and stderr are terminals (asked once).
pub fn stdout_is_terminal() -> bool {
    static IS: OnceLock<bool> = OnceLock::new();
    *IS.get_or_init(|| std::io::stdout().is_terminal())
}

pub fn stderr_is_terminal() -> bool {
    static IS: OnceLock<bool> = OnceLock::new();
    *IS.get_or_init(|| std::io::stderr().is_terminal())
}

fn kept_control(c: char) -> bool {
    matches!(c, '\n' | '\t' | '\r' | '\x08')
}

fn needs_care(c: char) -> bool {
    (c.is_control() && !kept_control(c)) || c == '\x1b'
}

/// `text` with every control but colour, style and the ordinary ones made visible.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_care) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let width = c.len_utf8();
        if c == '\x1b' {
            if let Some(len) = sgr_len(rest) {
                out.push_str(&rest[..len]);
                rest = &rest[len..];
                continue;
            }
            out.push('␛');
        } else if kept_control(c) || !c.is_control() {
            out.push(c);
        } else if (c as u32) < 0x20 || c == '\x7f' {
            out.push('^');
            out.push(((c as u8) ^ 0x40) as char);
        } else {
            out.push('\u{fffd}');
        }
        rest = &rest[width..];
    }
    Cow::Owned(out)
}

/// The length of an SGR sequence (`ESC [`, digits, `;` and `:`, then `m`) at the start of `s`, if one is there.
fn sgr_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("\x1b[")?;
    let params = body
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b';' || *b == b':')
        .count();
    (params <= 64 && body.as_bytes().get(params) == Some(&b'm')).then_some(2 + params + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_ordinary_controls_pass_untouched() {
        let text = "make: ok\ttab\r\nprogress 50%\x08\x08\x08ok\nünïcode ✓\n";
        assert!(matches!(for_terminal(text), Cow::Borrowed(_)));
    }

    #[test]
    fn colours_are_kept() {
        let text =
            "\x1b[1;31merror\x1b[0m: \x1b[38;5;208mwarn\x1b[m \x1b[38:2::255:0:0mrgb\x1b[0m\n";
        assert_eq!(for_terminal(text), text);
    }

    #[test]
    fn other_escapes_and_controls_are_made_visible() {
        // Window title, clipboard write, cursor moves, screen clear, a bell, a NUL and an 8-bit CSI.
        let text =
            "\x1b]0;pwned\x07\x1b]52;c;ZXZpbA==\x1b\\\x1b[2J\x1b[10;10H\x1b[?1049h\x00\u{9b}6n";
        let shown = for_terminal(text);
        assert!(!shown.contains('\x1b'), "{shown:?}");
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert_eq!(
            shown,
            "␛]0;pwned^G␛]52;c;ZXZpbA==␛\\␛[2J␛[10;10H␛[?1049h^@\u{fffd}6n"
        );
    }

    #[test]
    fn an_unfinished_or_endless_sequence_is_not_colour() {
        assert_eq!(for_terminal("\x1b[31"), "␛[31");
        let long = format!("\x1b[{}m", "1;".repeat(100));
        assert!(for_terminal(&long).starts_with('␛'));
    }
}
