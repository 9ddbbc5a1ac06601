//! The house rules a reviewer would otherwise check by eye, over every Rust file of the workspace.

use std::path::{Path, PathBuf};

/// Code past this many lines (before a file's unit tests) needs a reason.
const MOST_LINES: usize = 450;

/// The line that gives it, in the file's opening `//!` paragraph.
const REASON: &str = "//! Over 450 lines: ";

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_file_over_450_lines_of_code_says_why_in_one_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    rust_files(root, &mut files);
    assert!(
        files.len() > 100,
        "found only {} files under {}",
        files.len(),
        root.display()
    );
    let mut unexplained = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests sit beside the code they test; only the code before them counts.
        let code = text
            .lines()
            .take_while(|l| !l.starts_with("#[cfg(test)]"))
            .count();
        let reason = text
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .find_map(|l| l.strip_prefix(REASON));
        match reason {
            None if code > MOST_LINES => unexplained.push(format!(
                "{} ({code} lines of code)",
                path.strip_prefix(root).unwrap().display()
            )),
            Some(r) if r.trim().len() < 20 => unexplained.push(format!(
                "{}: \"{r}\" is not a reason",
                path.strip_prefix(root).unwrap().display()
            )),
            _ => {}
        }
    }
    assert!(
        unexplained.is_empty(),
        "split these, or say why in one line starting {REASON:?} in their opening //! paragraph:\n{}",
        unexplained.join("\n")
    );
}
