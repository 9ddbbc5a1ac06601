//! Job output made safe to show on the student's terminal.
//!
//! A terminal obeys more than colours: an escape sequence in a job's output can retitle the window, write the
//! clipboard (OSC 52), hide or redraw text, or answer back into the shell on some terminals. A job's output is
//! usually its owner's own, but instructors and TAs read other students' jobs with `rai logs`, so rai does not pass
//! it to a terminal as is. Colour and style (SGR, `ESC [ … m`, which compilers and test runners print) and the
//! ordinary controls (newline, tab, carriage return, backspace) are kept; any other escape is shown as a visible
//! `␛` followed by the rest of the sequence as plain text, other control characters as `^X`, and C1 controls as
//! `�`. Unicode's bidirectional controls (which reorder what a reader sees, "Trojan Source") are shown as `⟨U+202E⟩`.
//! Output to a pipe, a file or `--json` is passed through byte for byte.
//!
//! rai's own `✱` lines must not be overwritten by a job: each starts on a line of its own (a newline is written first
//! when the job's output stopped mid-line), and a backspace at the start of a line, which some terminals take back
//! onto the line above, is shown as `^H`. One-line fields that quote what a student wrote (a status reason, a
//! history row, a file name) go through [`visible`], where no control at all reaches the terminal.

use std::borrow::Cow;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Whether colour and style sequences of job output reach the terminal (`-c=false` or `NO_COLOR` turn it off).
static COLOR: AtomicBool = AtomicBool::new(true);

/// Turns colour in job output on or off for the rest of the run.
pub fn set_color(on: bool) {
    COLOR.store(on, Ordering::Relaxed);
}

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

/// Unicode's bidirectional formatting controls: they reorder the text around them as displayed.
fn is_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

fn needs_care(c: char) -> bool {
    (c.is_control() && !kept_control(c)) || c == '\x1b' || is_bidi(c)
}

/// A control character as text a reader can see: `^X` for C0 and DEL, `�` for C1, `⟨U+XXXX⟩` for bidi.
fn push_visible(out: &mut String, c: char) {
    if is_bidi(c) {
        out.push_str(&format!("⟨U+{:04X}⟩", c as u32));
    } else if (c as u32) < 0x20 || c == '\x7f' {
        out.push('^');
        out.push(((c as u8) ^ 0x40) as char);
    } else {
        out.push('\u{fffd}');
    }
}

/// One line of text that quotes a student (a status reason, a history field, a name), with every control, the
/// ordinary ones and escapes too, shown visibly: nothing in it can move the cursor or reorder the line.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() || is_bidi(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\x1b' => out.push('␛'),
            '\n' => out.push('⏎'),
            c if c.is_control() || is_bidi(c) => push_visible(&mut out, c),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Where the terminal's cursor is after the job output rai wrote to it: the column a backspace may go back to, and
/// whether anything at all is on the current line.
static COLUMN: Mutex<(usize, bool)> = Mutex::new((0, false));

/// Job output for the terminal: [`for_terminal`], and a backspace at the start of a line shown as `^H`. Keeps track
/// of the line, so that [`start_own_line`] knows whether the job stopped mid-line.
pub fn job_output(text: &str) -> String {
    let filtered = for_terminal(text);
    let mut state = COLUMN.lock().expect("never poisoned");
    let (column, written) = &mut *state;
    let mut out = String::with_capacity(filtered.len());
    for c in filtered.chars() {
        match c {
            '\n' => (*column, *written) = (0, false),
            '\r' => *column = 0,
            '\x08' if *column == 0 => {
                // Shown, and not counted: a next backspace must not take it back either.
                out.push_str("^H");
                *written = true;
                continue;
            }
            '\x08' => *column -= 1,
            _ => (*column, *written) = (*column + 1, true),
        }
        out.push(c);
    }
    out
}

/// What to write before one of rai's own lines so it starts at the left edge of a line of its own: a newline when
/// the job's output left anything on the current line (after a carriage return too, where the job's next output
/// would otherwise write over rai's line).
pub fn start_own_line() -> &'static str {
    let mut state = COLUMN.lock().expect("never poisoned");
    let mid = state.1;
    *state = (0, false);
    if mid { "\n" } else { "" }
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
                if COLOR.load(Ordering::Relaxed) {
                    out.push_str(&rest[..len]);
                }
                rest = &rest[len..];
                continue;
            }
            out.push('␛');
        } else if (kept_control(c) || !c.is_control()) && !is_bidi(c) {
            out.push(c);
        } else {
            push_visible(&mut out, c);
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
    fn bidi_controls_are_shown() {
        // "Trojan Source": an RLO makes `admin"; // ok` read differently from what it is.
        let text = "if user == \"guest\u{202E} \u{2066}// admin\u{2069} \u{2066}\" {";
        let shown = for_terminal(text);
        assert_eq!(
            shown,
            "if user == \"guest⟨U+202E⟩ ⟨U+2066⟩// admin⟨U+2069⟩ ⟨U+2066⟩\" {"
        );
        assert_eq!(visible("a\u{200F}b"), "a⟨U+200F⟩b");
    }

    #[test]
    fn one_line_fields_show_every_control() {
        let reason = "command failed: make\r✱ Job succeeded.\x08\x08\n\x1b[31mred\t";
        assert_eq!(
            visible(reason),
            "command failed: make^M✱ Job succeeded.^H^H⏎␛[31mred^I"
        );
        assert!(matches!(visible("plain ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn job_output_cannot_reach_back_over_rais_lines() {
        // Serialised: the column is the terminal's, one per process.
        static ONE: Mutex<()> = Mutex::new(());
        let _one = ONE.lock().unwrap();
        let _ = start_own_line();
        // Backspaces within the job's own line stay; at the start of a line they are shown.
        assert_eq!(job_output("abc\x08\x08ok\n"), "abc\x08\x08ok\n");
        assert_eq!(job_output("\x08\x08\x08fake"), "^H^H^Hfake");
        // The job stopped mid-line: rai's line starts on a new one.
        assert_eq!(start_own_line(), "\n");
        assert_eq!(start_own_line(), "");
        // After a carriage return the line still holds the job's text: rai's line goes below it.
        let _ = job_output("50%\r");
        assert_eq!(start_own_line(), "\n");
        let _ = job_output("\x08");
        assert_eq!(start_own_line(), "\n");
        let _ = job_output("done\n");
        assert_eq!(start_own_line(), "");
    }

    #[test]
    fn an_unfinished_or_endless_sequence_is_not_colour() {
        assert_eq!(for_terminal("\x1b[31"), "␛[31");
        let long = format!("\x1b[{}m", "1;".repeat(100));
        assert!(for_terminal(&long).starts_with('␛'));
    }
}
