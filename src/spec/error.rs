//! Spec errors: the message with its line and column, and an excerpt with a caret.

use std::fmt;
use std::ops::Range;

use crate::error::Error;

/// Widest excerpt line, in characters; longer lines show a window around the column.
pub(super) const EXCERPT_WIDTH: usize = 72;

/// `Error::Spec` at `span`: the message with the line and column, and the line with a
/// caret under the span.
pub(super) fn spec_error(text: &str, span: Range<usize>, message: impl fmt::Display) -> Error {
    let start = floor_boundary(text, span.start);
    let (line, col) = line_col(text, start);
    let line_start = text[..start].rfind('\n').map_or(0, |p| p + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |p| start + p);
    let end = floor_boundary(text, span.end.clamp(start, line_end));
    let chars: Vec<char> = text[line_start..line_end]
        .trim_end_matches('\r')
        .chars()
        .map(visible)
        .collect();
    let col0 = col - 1;
    let (lo, hi) = if chars.len() <= EXCERPT_WIDTH {
        (0, chars.len())
    } else {
        let lo = col0
            .saturating_sub(EXCERPT_WIDTH / 2)
            .min(chars.len() - EXCERPT_WIDTH);
        (lo, lo + EXCERPT_WIDTH)
    };
    let mut shown = String::from("  ");
    let mut indent = 2;
    if lo > 0 {
        shown.push('…');
        indent += 1;
    }
    shown.extend(&chars[lo..hi]);
    if hi < chars.len() {
        shown.push('…');
    }
    let width = text[start..end]
        .chars()
        .count()
        .min(hi.saturating_sub(col0))
        .max(1);
    let carets = format!(
        "{}{}",
        " ".repeat(indent + col0.saturating_sub(lo)),
        "^".repeat(width)
    );
    Error::Spec {
        message: format!("spec: line {line}, column {col}: {message}"),
        excerpt: format!("{shown}\n{carets}"),
    }
}

/// Keeps the excerpt one character per column and free of terminal control codes, and
/// of the invisible and bidirectional formatting characters that would make the shown
/// text differ from the text read (or reorder the rest of the line).
pub(super) fn visible(c: char) -> char {
    match c {
        '\t' => ' ',
        c if c.is_control() => '\u{FFFD}',
        '\u{061C}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2069}'
        | '\u{FEFF}' => '\u{FFFD}',
        c => c,
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
pub(super) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = floor_boundary(text, at);
    let before = &text[..at];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    (line, text[line_start..at].chars().count() + 1)
}

/// The largest char boundary at or below `at` (clamped to the text).
pub(super) fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// User text quoted in a message, cut short: a 60 KiB word must not make a 60 KiB error.
/// Control and invisible characters are shown as � ([`visible`]).
pub(super) fn clip(s: &str) -> String {
    const MAX: usize = 40;
    let (kept, more) = match s.char_indices().nth(MAX) {
        Some((cut, _)) => (&s[..cut], "…"),
        None => (s, ""),
    };
    kept.chars().map(visible).chain(more.chars()).collect()
}
