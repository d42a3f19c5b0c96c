//! The lexer: spec text to tokens with byte spans.

use std::ops::Range;

use super::error::{clip, spec_error, visible};
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tk {
    /// A word, possibly dotted: `Conv2d`, `nn.Conv2d`, `True`, `same`.
    Name(String),
    /// `None` when the digits do not fit in an i64; kept so the error can name the
    /// layer and argument.
    Int(Option<i64>),
    Float(f64),
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Colon,
    Equals,
    Arrow,
    Minus,
    Plus,
    Star,
    /// `//`, Python's floor division.
    SlashSlash,
    /// `/`, Python's true division: read so that its error can say to write `//`.
    Slash,
    Eof,
}

#[derive(Clone, Debug)]
pub(super) struct Tok {
    pub(super) kind: Tk,
    pub(super) span: Range<usize>,
    /// Whether a newline separates this token from the previous one: `ReLU` at the end
    /// of a line is not called with the `(1): …` that starts the next.
    pub(super) newline_before: bool,
}

pub(super) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

pub(super) fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

pub(super) fn lex(text: &str) -> Result<Vec<Tok>> {
    let bytes = text.as_bytes();
    let mut toks = Vec::new();
    let mut newline = false;
    // A byte-order mark is what some editors put before pasted text.
    let mut i = if text.starts_with('\u{feff}') { 3 } else { 0 };
    while let Some(c) = text[i..].chars().next() {
        let start = i;
        let next = bytes.get(i + 1).copied();
        let kind = match c {
            '\n' => {
                newline = true;
                i += 1;
                continue;
            }
            '#' => {
                i = text[i..].find('\n').map_or(text.len(), |p| i + p);
                continue;
            }
            '\t' | '\r' => {
                i += 1;
                continue;
            }
            c if c.is_control() => {
                return Err(spec_error(
                    text,
                    start..start + c.len_utf8(),
                    format!(
                        "control character U+{:04X} in the spec; remove it (a spec is \
                         plain text)",
                        c as u32
                    ),
                ));
            }
            c if c.is_whitespace() => {
                i += c.len_utf8();
                continue;
            }
            '(' => Tk::LParen,
            ')' => Tk::RParen,
            '[' => Tk::LBracket,
            ']' => Tk::RBracket,
            ',' => Tk::Comma,
            ':' => Tk::Colon,
            '=' if next == Some(b'>') => {
                return Err(spec_error(
                    text,
                    start..start + 2,
                    "'=>' is not an arrow; write -> or →",
                ));
            }
            '=' => Tk::Equals,
            '-' if next == Some(b'>') => {
                i += 1;
                Tk::Arrow
            }
            '-' => Tk::Minus,
            '+' => Tk::Plus,
            '*' if next == Some(b'*') => {
                return Err(spec_error(
                    text,
                    start..start + 2,
                    "'**' (power) is not supported in a spec; write the number, or a \
                     product such as 2*2*2",
                ));
            }
            '*' => Tk::Star,
            '/' if next == Some(b'/') => {
                i += 1;
                Tk::SlashSlash
            }
            '/' => Tk::Slash,
            '→' => Tk::Arrow,
            '\'' | '"' => {
                let (s, end) = lex_string(text, i, c)?;
                i = end;
                toks.push(Tok {
                    kind: Tk::Str(s),
                    span: start..i,
                    newline_before: newline,
                });
                newline = false;
                continue;
            }
            c if c.is_ascii_digit() || (c == '.' && next.is_some_and(|b| b.is_ascii_digit())) => {
                let (kind, end) = lex_number(text, i)?;
                i = end;
                toks.push(Tok {
                    kind,
                    span: start..i,
                    newline_before: newline,
                });
                newline = false;
                continue;
            }
            c if c.is_ascii() && is_ident_start(c as u8) => {
                let mut j = i;
                loop {
                    while j < bytes.len() && is_ident_byte(bytes[j]) {
                        j += 1;
                    }
                    if j + 1 < bytes.len() && bytes[j] == b'.' && is_ident_start(bytes[j + 1]) {
                        j += 1;
                        continue;
                    }
                    break;
                }
                i = j;
                toks.push(Tok {
                    kind: Tk::Name(text[start..j].to_string()),
                    span: start..j,
                    newline_before: newline,
                });
                newline = false;
                continue;
            }
            c => return Err(stray(text, start, c)),
        };
        i += c.len_utf8();
        toks.push(Tok {
            kind,
            span: start..i,
            newline_before: newline,
        });
        newline = false;
    }
    toks.push(Tok {
        kind: Tk::Eof,
        span: text.len()..text.len(),
        newline_before: newline,
    });
    Ok(toks)
}

/// A quoted string on one line, without escapes (PyTorch's strings need none).
pub(super) fn lex_string(text: &str, start: usize, quote: char) -> Result<(String, usize)> {
    let body = start + 1;
    for (off, ch) in text[body..].char_indices() {
        if ch == quote {
            return Ok((text[body..body + off].to_string(), body + off + 1));
        }
        if ch == '\n' {
            break;
        }
        if ch.is_control() && ch != '\t' && ch != '\r' {
            let at = body + off;
            return Err(spec_error(
                text,
                at..at + ch.len_utf8(),
                format!("control character U+{:04X} in a string", ch as u32),
            ));
        }
    }
    Err(spec_error(
        text,
        start..start + 1,
        format!("this string is not closed: add {quote} before the end of the line"),
    ))
}

/// Python's decimal literals: `5`, `5.`, `.5`, `0.5`, `1e-3`, `2.5E+2`.
pub(super) fn lex_number(text: &str, start: usize) -> Result<(Tk, usize)> {
    let b = text.as_bytes();
    let digits = |mut j: usize| {
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let mut j = digits(start);
    let mut float = false;
    if j < b.len() && b[j] == b'.' {
        float = true;
        j = digits(j + 1);
    }
    if j < b.len() && (b[j] == b'e' || b[j] == b'E') {
        let mut k = j + 1;
        if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
            k += 1;
        }
        if k < b.len() && b[k].is_ascii_digit() {
            float = true;
            j = digits(k);
        }
    }
    // `5x5`, `2d`, `1.5.2`: a number glued to more is a typo, not two tokens.
    let mut end = j;
    while end < b.len() && (is_ident_byte(b[end]) || b[end] == b'.') {
        end += 1;
    }
    let literal = &text[start..end];
    let bad = || {
        spec_error(
            text,
            start..end,
            format!(
                "'{}' is not a number; sizes are ints such as 5, and pairs are tuples \
                 such as (5, 5)",
                clip(literal)
            ),
        )
    };
    if end > j {
        return Err(bad());
    }
    let kind = if float {
        Tk::Float(literal.parse::<f64>().map_err(|_| bad())?)
    } else {
        Tk::Int(literal.parse::<i64>().ok())
    };
    Ok((kind, j))
}

pub(super) fn stray(text: &str, at: usize, c: char) -> Error {
    let message = match c {
        '‘' | '’' | '“' | '”' => {
            format!("curly quote '{c}'; write strings with straight quotes, e.g. 'zeros'")
        }
        '–' | '—' => format!("'{c}' is a dash, not an arrow; write -> or →"),
        '>' => "unexpected '>'; the arrow between layers is ->".to_string(),
        '.' => "unexpected '.'; options are keyword arguments, e.g. Conv2d(1, 20, 5, \
                stride=2)"
            .to_string(),
        // An invisible or control character is named by its code point, not written.
        c if visible(c) != c => format!("unexpected character {c:?} (U+{:04X})", c as u32),
        c => format!("unexpected character '{c}'"),
    };
    spec_error(text, at..at + c.len_utf8(), message)
}
