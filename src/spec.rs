//! The network as text: PyTorch constructor calls, or PyTorch's own `print(model)`.
//!
//! A spec lists layers in order. Each layer is written as PyTorch's constructor call,
//! so a network can be copied from Python code or from the output of `print(model)`,
//! and [`crate::Sequential::spec`] prints one back that this module reads to the same
//! network.
//!
//! ```text
//! spec     := item (separator* item)*
//! separator:= '->' | '→' | ',' | whitespace | newline | '#' comment to the end of the line
//! item     := ['(' index ')' ':'] layer
//!           | [word '='] ['nn.' | 'torch.nn.'] 'Sequential' '(' item* ')'
//! layer    := ['nn.' | 'torch.nn.'] Name ['(' [arg (',' arg)* [',']] ')']
//! arg      := value | keyword '=' value          (positional arguments come first)
//! value    := int | float | True | False | None | 'string' | "string" | word
//!           | '(' value, … ')' | '[' value, … ']'
//! ```
//!
//! - Names and arguments are PyTorch's, with its defaults: `Conv2d(1, 20, 5, stride=2)`,
//!   `MaxPool2d(kernel_size=(2, 3))`, `Dropout(p=.5)`. `()` may be left out: `ReLU`.
//! - `(0): Conv2d(...)` is how PyTorch prints the children of an `nn.Sequential`; the
//!   indices must count 0, 1, 2, … because seqnet names parameters by position
//!   (`0.weight`), as PyTorch's state_dict does.
//! - A bare word stands for the string, because PyTorch prints `padding=same` and
//!   `padding_mode=reflect` unquoted.
//! - Numbers follow Python: `5` is an int; `0.5`, `.5`, `1e-3` are floats; `(5)` is 5
//!   and `(5,)` a 1-tuple.
//!
//! Every error is an [`Error::Spec`](crate::Error::Spec) with the line and column in its
//! message and an excerpt with a caret under the offending text.
//!
//! ```
//! use seqnet::spec;
//!
//! let arrows = "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() \
//!               -> LazyLinear(100) -> ReLU() -> Linear(100, 10)";
//! let printed = "Sequential(
//!   (0): Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1))
//!   (1): ReLU()
//!   (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
//!   (3): Flatten(start_dim=1, end_dim=-1)
//!   (4): Linear(in_features=2880, out_features=100, bias=True)
//!   (5): ReLU()
//!   (6): Linear(in_features=100, out_features=10, bias=True)
//! )";
//! let a = spec::build(arrows, &[1, 28, 28], 0)?;
//! let b = spec::build(printed, &[1, 28, 28], 0)?;
//! assert_eq!(a.spec(), b.spec());
//! assert_eq!(a.num_params(), 289_630);
//!
//! let err = spec::build("Conv2d(1, 20, 5 -> ReLU()", &[1, 28, 28], 0).unwrap_err();
//! assert!(err.to_string().starts_with(
//!     "spec: line 1, column 17: expected ')' to close 'Conv2d(' opened at column 1"));
//! # Ok::<(), seqnet::Error>(())
//! ```

use std::fmt;
use std::ops::Range;

use crate::error::{Error, Result};
use crate::layers::{
    AvgPool2d, Conv2d, Dropout, Flatten, Layer, LazyConv2d, LazyLinear, Linear, LogSoftmax,
    MaxPool2d, ReLU, Sigmoid, Size2, Softmax, Tanh,
};
use crate::sequential::Sequential;

/// The layer names a spec may use (each also with an `nn.` or `torch.nn.` prefix).
pub const LAYER_NAMES: &[&str] = &[
    "Conv2d",
    "LazyConv2d",
    "Linear",
    "LazyLinear",
    "MaxPool2d",
    "AvgPool2d",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Flatten",
    "Dropout",
    "Softmax",
    "LogSoftmax",
];

/// Longest spec read, in bytes. Real networks take a few hundred; the cap keeps a
/// mistaken input (a dataset file passed as the spec) from being scanned at length.
pub const MAX_SPEC_BYTES: usize = 64 * 1024;

/// Most layers a spec may list.
pub const MAX_LAYERS: usize = 10_000;

/// Deepest nesting of tuples: the parser recurses on them, so an input of a thousand
/// `(` must not be able to exhaust the stack.
const MAX_NESTING: usize = 32;

/// The example shown when a spec names no layers.
const EXAMPLE: &str = "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> \
                       LazyLinear(100) -> ReLU() -> Linear(100, 10)";

/// Why `nn.Sequential(OrderedDict(...))` cannot be read.
const NAMED_CHILDREN: &str = "nn.Sequential(OrderedDict(...)) names its children, but only \
    index-numbered children map to seqnet's state_dict names ('0.weight', …); pass the \
    layers to nn.Sequential(...) directly";

/// PyTorch layers seqnet does not implement: named as such rather than as typos.
const NOT_IMPLEMENTED: &[&str] = &[
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool1d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv3d",
    "ConvTranspose2d",
    "Dropout2d",
    "ELU",
    "Embedding",
    "GELU",
    "GRU",
    "Hardtanh",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "LocalResponseNorm",
    "LSTM",
    "MaxPool1d",
    "PReLU",
    "ReLU6",
    "RNN",
    "SiLU",
    "Softmax2d",
    "Softplus",
    "Unflatten",
    "Upsample",
    "ZeroPad2d",
];

/// One layer call as written, e.g. `Conv2d(1, 20, kernel_size=5)`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerCall {
    /// The layer name without an `nn.` or `torch.nn.` prefix, e.g. `Conv2d`. Not
    /// checked against [`LAYER_NAMES`] by [`parse`]; [`to_layers`] does that.
    pub name: String,
    /// Positional arguments, in order.
    pub args: Vec<Value>,
    /// Keyword arguments, in the order written.
    pub kwargs: Vec<(String, Value)>,
    /// The byte range of the call in the text, from the name (with its prefix) to the
    /// closing `)`.
    pub span: Range<usize>,
}

/// An argument value, with Python's types.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
    None,
    /// A quoted string, or a bare word such as `same` (PyTorch prints some strings
    /// unquoted).
    Str(String),
    Tuple(Vec<Value>),
}

impl fmt::Display for Value {
    /// Python's spelling: `5`, `0.5`, `True`, `None`, `'zeros'`, `(5, 5)`, `(5,)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            // Debug prints 1.0 as `1.0` and 1e-7 as `1e-7`, as Python does.
            Value::Float(v) => write!(f, "{v:?}"),
            Value::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            Value::None => f.write_str("None"),
            Value::Str(s) => write!(f, "'{s}'"),
            Value::Tuple(items) => {
                f.write_str("(")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                if items.len() == 1 {
                    f.write_str(",")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// Parses the text into layer calls, checking syntax only: brackets, separators,
/// literals, and the `(i):` indices of PyTorch's print. Names and arguments are checked
/// by [`to_layers`].
pub fn parse(text: &str) -> Result<Vec<LayerCall>> {
    parse_calls(text)?
        .into_iter()
        .map(|call| {
            let mut args = Vec::new();
            let mut kwargs = Vec::new();
            for arg in call.args {
                let value = public_value(text, arg.value)?;
                match arg.key {
                    Some((key, _)) => kwargs.push((key, value)),
                    None => args.push(value),
                }
            }
            Ok(LayerCall {
                name: call.name,
                args,
                kwargs,
                span: call.span,
            })
        })
        .collect()
}

/// Parses the text and constructs each layer with PyTorch's argument names, order and
/// defaults. The layers are not built yet: sizes that depend on the input (and checks
/// such as Dropout's `p` range or Softmax's `dim`) are settled by [`Sequential`].
pub fn to_layers(text: &str) -> Result<Vec<Box<dyn Layer>>> {
    parse_calls(text)?
        .iter()
        .map(|call| make_layer(text, call))
        .collect()
}

/// Builds the network the text describes for images of shape `input`, drawing the
/// parameters from `seed`: `Sequential::new(input).seed(seed)`, then each layer of
/// [`to_layers`] added in order.
///
/// A network of more than [`MAX_NETWORK_PARAMS`] parameters is refused before the layer
/// that would cross the limit allocates anything.
pub fn build(text: &str, input: &[usize], seed: u64) -> Result<Sequential> {
    build_within(
        text,
        input,
        seed,
        MAX_NETWORK_PARAMS,
        &format!("the {MAX_NETWORK_PARAMS} seqnet allocates for one network"),
    )
}

/// The most parameters [`build`] allocates for one network (4 GiB of f32, as for one
/// layer): a larger network is almost certainly a typo, and several layers each just
/// under the per-layer limit would otherwise exhaust memory.
pub const MAX_NETWORK_PARAMS: usize = crate::shape::MAX_PARAMS_PER_LAYER;

/// [`build`] with a budget: a network of more than `max_params` parameters is refused
/// layer by layer, before the layer that would cross it allocates anything. `limit`
/// says what the budget is in the error message (`"the 2000 f32 values the file
/// holds"`). A model file's spec is built within the values the file holds, so a small
/// file cannot make seqnet allocate gigabytes.
pub fn build_within(
    text: &str,
    input: &[usize],
    seed: u64,
    max_params: usize,
    limit: &str,
) -> Result<Sequential> {
    let calls = parse_calls(text)?;
    let layers = calls
        .iter()
        .map(|call| make_layer(text, call))
        .collect::<Result<Vec<_>>>()?;
    if !input.is_empty() && !input.contains(&0) && crate::shape::checked_numel(input).is_none() {
        return Err(Error::Input(format!(
            "input shape {} has more than {} values per image; check the sizes for a typo",
            crate::shape::fmt_shape(input),
            crate::shape::MAX_ELEMENTS_PER_IMAGE
        )));
    }
    let mut net = Sequential::new(input.to_vec()).seed(seed);
    let mut used: u128 = 0;
    for (call, layer) in calls.iter().zip(layers) {
        if let Some(planned) = planned_params(text, call, net.output_shape()) {
            let total = used + planned;
            if total > max_params as u128 {
                return Err(Error::Shape {
                    index: net.layers().len(),
                    repr: layer.repr(),
                    message: format!(
                        "the network would need {total} parameters up to this layer, more \
                         than {limit}"
                    ),
                });
            }
        }
        net = net.add_boxed(layer)?;
        if let Some(added) = net.layers().last() {
            used += added
                .params()
                .iter()
                .map(|(_, p)| p.value.len() as u128)
                .sum::<u128>();
        }
    }
    Ok(net)
}

/// The parameters (weight and bias) a Conv2d or Linear call allocates when built on
/// `input`, found without building it. `None` for layers without parameters, and when
/// building fails anyway before allocating (sizes that do not fit the input, a weight
/// above [`crate::shape::MAX_PARAMS_PER_LAYER`]): the layer's own message is the better one.
fn planned_params(text: &str, call: &Call, input: &[usize]) -> Option<u128> {
    let (layer, sig, lazy_in, conv) = match call.name.as_str() {
        "Conv2d" => ("Conv2d", CONV2D, None, true),
        "LazyConv2d" => ("LazyConv2d", LAZY_CONV2D, Some("in_channels"), true),
        "Linear" => ("Linear", LINEAR, None, false),
        "LazyLinear" => ("LazyLinear", LAZY_LINEAR, Some("in_features"), false),
        _ => return None,
    };
    let b = Bound::new(text, call, layer, sig, lazy_in).ok()?;
    let bias = b.flag("bias").ok()?.unwrap_or(true);
    let (out, fan_in) = if conv {
        let &[c, _, _] = input else { return None };
        if lazy_in.is_none() && b.size("in_channels", 1).ok()?? != c {
            return None;
        }
        let out = b.size("out_channels", 1).ok()??;
        let k = b.size2("kernel_size", 1).ok()??;
        // Two sizes below 2^64 multiply within u128; the third may not (checked below).
        (
            out as u128,
            (k.0 as u128 * k.1 as u128).checked_mul(c as u128)?,
        )
    } else {
        let &[features] = input else { return None };
        if lazy_in.is_none() && b.size("in_features", 1).ok()?? != features {
            return None;
        }
        (b.size("out_features", 1).ok()?? as u128, features as u128)
    };
    let weight = out.checked_mul(fan_in)?;
    if weight > crate::shape::MAX_PARAMS_PER_LAYER as u128 {
        return None;
    }
    Some(weight + if bias { out } else { 0 })
}

// ---------------------------------------------------------------------------------------
// Errors and excerpts

/// Widest excerpt line, in characters; longer lines show a window around the column.
const EXCERPT_WIDTH: usize = 72;

/// `Error::Spec` at `span`: the message with the line and column, and the line with a
/// caret under the span.
fn spec_error(text: &str, span: Range<usize>, message: impl fmt::Display) -> Error {
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
fn visible(c: char) -> char {
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
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = floor_boundary(text, at);
    let before = &text[..at];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    (line, text[line_start..at].chars().count() + 1)
}

/// The largest char boundary at or below `at` (clamped to the text).
fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// User text quoted in a message, cut short: a 60 KiB word must not make a 60 KiB error.
/// Control and invisible characters are shown as � ([`visible`]).
fn clip(s: &str) -> String {
    const MAX: usize = 40;
    let (kept, more) = match s.char_indices().nth(MAX) {
        Some((cut, _)) => (&s[..cut], "…"),
        None => (s, ""),
    };
    kept.chars().map(visible).chain(more.chars()).collect()
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Clone, Debug, PartialEq)]
enum Tk {
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
    Eof,
}

#[derive(Clone, Debug)]
struct Tok {
    kind: Tk,
    span: Range<usize>,
    /// Whether a newline separates this token from the previous one: `ReLU` at the end
    /// of a line is not called with the `(1): …` that starts the next.
    newline_before: bool,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn lex(text: &str) -> Result<Vec<Tok>> {
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
fn lex_string(text: &str, start: usize, quote: char) -> Result<(String, usize)> {
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
fn lex_number(text: &str, start: usize) -> Result<(Tk, usize)> {
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

fn stray(text: &str, at: usize, c: char) -> Error {
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

// ---------------------------------------------------------------------------------------
// Parser

/// A value with the byte range it was written at, for carets.
#[derive(Clone, Debug)]
struct Node {
    kind: NodeKind,
    span: Range<usize>,
}

#[derive(Clone, Debug)]
enum NodeKind {
    Int(i64),
    /// An int that does not fit in an i64.
    BigInt,
    Float(f64),
    Bool(bool),
    None,
    Str(String),
    Tuple(Vec<Node>),
}

#[derive(Clone, Debug)]
struct Arg {
    /// The keyword and its span, for keyword arguments.
    key: Option<(String, Range<usize>)>,
    value: Node,
}

impl Arg {
    fn span(&self) -> Range<usize> {
        match &self.key {
            Some((_, k)) => k.start..self.value.span.end,
            None => self.value.span.clone(),
        }
    }
}

#[derive(Clone, Debug)]
struct Call {
    /// Without the `nn.` / `torch.nn.` prefix.
    name: String,
    name_span: Range<usize>,
    args: Vec<Arg>,
    span: Range<usize>,
}

/// An open bracket, for "expected ')' to close 'Conv2d(' opened at column 1".
struct Open {
    what: String,
    close: char,
    at: usize,
}

/// `nn.Conv2d` and `torch.nn.Conv2d` are Conv2d, so pasted Python code works.
fn strip_prefix(name: &str) -> &str {
    for prefix in ["torch.nn.", "nn."] {
        if let Some(rest) = name.strip_prefix(prefix) {
            if !rest.is_empty() {
                return rest;
            }
        }
    }
    name
}

fn starts_value(kind: &Tk) -> bool {
    matches!(
        kind,
        Tk::Int(_)
            | Tk::Float(_)
            | Tk::Str(_)
            | Tk::Minus
            | Tk::LParen
            | Tk::LBracket
            | Tk::Name(_)
    )
}

/// Parses the whole text; the internal form keeps spans for the semantic errors.
fn parse_calls(text: &str) -> Result<Vec<Call>> {
    if text.len() > MAX_SPEC_BYTES {
        // Excerpt from the cut-off prefix only: the rest may be huge.
        let at = floor_boundary(text, MAX_SPEC_BYTES);
        return Err(spec_error(
            &text[..at],
            at..at,
            format!(
                "the spec is {} bytes long; seqnet reads at most {MAX_SPEC_BYTES} bytes \
                 (64 KiB). Is this the right file?",
                text.len()
            ),
        ));
    }
    let toks = lex(text)?;
    let mut p = Parser {
        text,
        toks,
        pos: 0,
        calls: Vec::new(),
    };
    p.parse_list(None)?;
    if p.calls.is_empty() {
        let at = text.len() - text.trim_start().len();
        return Err(spec_error(
            text,
            at..at,
            format!("the spec names no layers; e.g. {EXAMPLE}"),
        ));
    }
    Ok(p.calls)
}

struct Parser<'t> {
    text: &'t str,
    /// Never empty: ends with `Tk::Eof`.
    toks: Vec<Tok>,
    pos: usize,
    calls: Vec<Call>,
}

impl Parser<'_> {
    fn peek_at(&self, n: usize) -> &Tok {
        let last = self.toks.len() - 1;
        &self.toks[(self.pos + n).min(last)]
    }

    fn peek(&self) -> Tok {
        self.peek_at(0).clone()
    }

    fn bump(&mut self) {
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
    }

    fn err(&self, span: Range<usize>, message: impl fmt::Display) -> Error {
        spec_error(self.text, span, message)
    }

    /// Just after the last token: where a missing `)` belongs when the text ends.
    fn eof_span(&self) -> Range<usize> {
        let end = match self.pos {
            0 => 0,
            p => self.toks[p - 1].span.end,
        };
        end..end
    }

    /// `column 7`, or `line 2, column 7` when `opened` is on another line than `here`.
    fn position(&self, opened: usize, here: usize) -> String {
        let (ol, oc) = line_col(self.text, opened);
        let (hl, _) = line_col(self.text, here);
        if ol == hl {
            format!("column {oc}")
        } else {
            format!("line {ol}, column {oc}")
        }
    }

    fn unclosed(&self, open: &Open, found: &Tok) -> Error {
        let (span, ends) = match found.kind {
            Tk::Eof => (self.eof_span(), ", but the spec ends"),
            _ => (found.span.clone(), ""),
        };
        let at = self.position(open.at, span.start);
        self.err(
            span,
            format!(
                "expected '{}' to close '{}' opened at {at}{ends}",
                open.close, open.what
            ),
        )
    }

    fn describe(&self, tok: &Tok) -> String {
        match tok.kind {
            Tk::Eof => "the end of the spec".to_string(),
            _ => format!("'{}'", clip(&self.text[tok.span.clone()])),
        }
    }

    /// Layers separated by any mix of separators, up to the end of the text or, inside
    /// `Sequential(`, up to its `)`.
    fn parse_list(&mut self, open: Option<Open>) -> Result<()> {
        let mut items = 0usize;
        let mut arrow: Option<Range<usize>> = None;
        loop {
            let tok = self.peek();
            match &tok.kind {
                Tk::Comma => self.bump(),
                Tk::Arrow => {
                    if items == 0 {
                        return Err(self.err(
                            tok.span,
                            "'->' has no layer before it; arrows go between layers",
                        ));
                    }
                    if arrow.is_some() {
                        return Err(self.err(
                            tok.span,
                            "a second '->' with no layer since the last one; is a layer missing?",
                        ));
                    }
                    arrow = Some(tok.span);
                    self.bump();
                }
                Tk::Eof | Tk::RParen => {
                    // A dangling arrow usually means a layer was cut off.
                    if let Some(a) = arrow {
                        return Err(
                            self.err(a, "'->' has no layer after it; arrows go between layers")
                        );
                    }
                    return match (&tok.kind, &open) {
                        (Tk::Eof, None) => Ok(()),
                        (Tk::Eof, Some(o)) => Err(self.unclosed(o, &tok)),
                        (_, Some(_)) => {
                            self.bump();
                            Ok(())
                        }
                        (_, None) => {
                            Err(self.err(tok.span, "unmatched ')': no '(' before it is still open"))
                        }
                    };
                }
                Tk::LParen => {
                    self.index_prefix()?;
                    self.item(open.is_some(), true)?;
                    items += 1;
                    arrow = None;
                }
                Tk::Name(_) => {
                    self.item(open.is_some(), false)?;
                    items += 1;
                    arrow = None;
                }
                _ => {
                    return Err(self.err(
                        tok.span.clone(),
                        format!(
                            "expected a layer such as Conv2d(1, 20, 5), found {}",
                            self.describe(&tok)
                        ),
                    ));
                }
            }
        }
    }

    /// PyTorch's `(3):` before a child of `nn.Sequential`.
    fn index_prefix(&mut self) -> Result<()> {
        let open = self.peek();
        self.bump();
        let tok = self.peek();
        let expected = self.calls.len();
        match &tok.kind {
            Tk::Int(v) => {
                self.bump();
                let close = self.peek();
                if close.kind != Tk::RParen {
                    return Err(self.err(
                        close.span,
                        "expected ')' after the index, as PyTorch prints '(0): Conv2d(...)'",
                    ));
                }
                self.bump();
                let colon = self.peek();
                if colon.kind != Tk::Colon {
                    return Err(self.err(
                        colon.span,
                        "expected ':' after the index, as PyTorch prints '(0): Conv2d(...)'",
                    ));
                }
                self.bump();
                if *v != Some(expected as i64) {
                    return Err(self.err(
                        tok.span.clone(),
                        format!(
                            "index ({}) is out of order: this is layer {expected}, which \
                             PyTorch prints as ({expected}):. seqnet names parameters by \
                             position, as PyTorch's state_dict does ('{expected}.weight'), \
                             so the indices must run 0, 1, 2, … in order",
                            clip(&self.text[tok.span.clone()])
                        ),
                    ));
                }
                let layer = self.peek();
                if !matches!(layer.kind, Tk::Name(_)) {
                    return Err(self.err(
                        layer.span.clone(),
                        format!(
                            "expected a layer after '({expected}):', found {}",
                            self.describe(&layer)
                        ),
                    ));
                }
                Ok(())
            }
            Tk::Name(name) if self.peek_at(1).kind == Tk::RParen => Err(self.err(
                tok.span.clone(),
                format!(
                    "named child '({})': only the index-numbered children of an \
                     nn.Sequential ((0):, (1):, …) map to seqnet's state_dict names \
                     ('0.weight', '1.bias', …); build the model as nn.Sequential(...) \
                     without names",
                    clip(name)
                ),
            )),
            _ => Err(self.err(
                open.span,
                "expected a layer; a '(' before a layer must hold its index, as PyTorch \
                 prints '(0): Conv2d(...)'",
            )),
        }
    }

    /// A layer call, or a `Sequential(...)` wrapper around a list of them.
    fn item(&mut self, nested: bool, indexed: bool) -> Result<()> {
        let mut tok = self.peek();
        // Pasted Python: `model = nn.Sequential(...)`.
        if !nested && !indexed && self.peek_at(1).kind == Tk::Equals {
            let is_seq =
                matches!(&self.peek_at(2).kind, Tk::Name(n) if strip_prefix(n) == "Sequential");
            if !is_seq {
                return Err(self.err(
                    self.peek_at(1).span.clone(),
                    "unexpected '=': a spec lists layers; the only assignment understood \
                     is `model = nn.Sequential(...)`",
                ));
            }
            self.bump();
            self.bump();
            tok = self.peek();
        }
        let Tk::Name(raw) = &tok.kind else {
            return Err(self.err(
                tok.span.clone(),
                format!("expected a layer, found {}", self.describe(&tok)),
            ));
        };
        let name = strip_prefix(raw);
        if name == "OrderedDict" {
            return Err(self.err(tok.span, NAMED_CHILDREN));
        }
        if name != "Sequential" {
            return self.call(&tok, raw);
        }
        if nested || indexed {
            return Err(self.err(
                tok.span,
                "nested Sequential: a seqnet network is one flat nn.Sequential whose \
                 parameters are named by position ('0.weight'); list the inner layers in \
                 its place",
            ));
        }
        self.bump();
        let paren = self.peek();
        if paren.kind != Tk::LParen || paren.newline_before {
            return Err(self.err(
                tok.span,
                "expected '(' after 'Sequential': write Sequential(...) around the layers",
            ));
        }
        self.bump();
        self.parse_list(Some(Open {
            what: format!("{}(", clip(raw)),
            close: ')',
            at: tok.span.start,
        }))
    }

    fn call(&mut self, name_tok: &Tok, raw: &str) -> Result<()> {
        if self.calls.len() >= MAX_LAYERS {
            return Err(self.err(
                name_tok.span.clone(),
                format!("more than {MAX_LAYERS} layers; seqnet reads at most {MAX_LAYERS}"),
            ));
        }
        self.bump();
        let mut args = Vec::new();
        let mut end = name_tok.span.end;
        let paren = self.peek();
        if paren.kind == Tk::LParen && !paren.newline_before {
            self.bump();
            let open = Open {
                what: format!("{}(", clip(raw)),
                close: ')',
                at: name_tok.span.start,
            };
            let mut keywords = false;
            loop {
                let tok = self.peek();
                match &tok.kind {
                    Tk::RParen => {
                        self.bump();
                        end = tok.span.end;
                        break;
                    }
                    Tk::Comma => {
                        return Err(self.err(
                            tok.span,
                            format!(
                                "unexpected ',' in '{}': an argument is missing before it",
                                open.what
                            ),
                        ));
                    }
                    Tk::Name(key) if self.peek_at(1).kind == Tk::Equals => {
                        if key.contains('.') {
                            return Err(
                                self.err(tok.span.clone(), "a keyword is one word, e.g. stride=2")
                            );
                        }
                        self.bump();
                        self.bump();
                        if !starts_value(&self.peek_at(0).kind) {
                            let found = self.peek();
                            return Err(self.err(
                                found.span.clone(),
                                format!(
                                    "expected a value after '{}=', found {}",
                                    clip(key),
                                    self.describe(&found)
                                ),
                            ));
                        }
                        let value = self.value(&open, 0)?;
                        args.push(Arg {
                            key: Some((key.clone(), tok.span.clone())),
                            value,
                        });
                        keywords = true;
                    }
                    k if starts_value(k) => {
                        if keywords {
                            return Err(self.err(
                                tok.span,
                                "positional argument follows keyword argument (Python \
                                 forbids it); give this one by name too, e.g. stride=2",
                            ));
                        }
                        let value = self.value(&open, 0)?;
                        args.push(Arg { key: None, value });
                    }
                    _ => return Err(self.unclosed(&open, &tok)),
                }
                let tok = self.peek();
                match &tok.kind {
                    Tk::Comma => self.bump(),
                    Tk::RParen => {}
                    // The next layer: this call's ')' is missing.
                    Tk::Name(_) if self.is_call_start(1) => {
                        return Err(self.unclosed(&open, &tok));
                    }
                    k if starts_value(k) => {
                        return Err(self.err(
                            tok.span,
                            format!("expected ',' between the arguments of '{}'", open.what),
                        ));
                    }
                    _ => return Err(self.unclosed(&open, &tok)),
                }
            }
        }
        self.calls.push(Call {
            name: strip_prefix(raw).to_string(),
            name_span: name_tok.span.clone(),
            args,
            span: name_tok.span.start..end,
        });
        Ok(())
    }

    /// Whether the token `n` ahead is a `(` that opens a call (same line as the name).
    fn is_call_start(&self, n: usize) -> bool {
        let t = self.peek_at(n);
        t.kind == Tk::LParen && !t.newline_before
    }

    fn value(&mut self, open: &Open, depth: usize) -> Result<Node> {
        let tok = self.peek();
        let kind = match &tok.kind {
            Tk::Int(Some(v)) => NodeKind::Int(*v),
            Tk::Int(None) => NodeKind::BigInt,
            Tk::Float(f) => NodeKind::Float(*f),
            Tk::Str(s) => NodeKind::Str(s.clone()),
            Tk::Minus => {
                self.bump();
                let num = self.peek();
                let kind = match num.kind {
                    // The digits are non-negative, so negating cannot overflow.
                    Tk::Int(Some(v)) => NodeKind::Int(-v),
                    Tk::Int(None) => NodeKind::BigInt,
                    Tk::Float(f) => NodeKind::Float(-f),
                    _ => {
                        return Err(self.err(
                            tok.span,
                            format!("expected a number after '-', found {}", self.describe(&num)),
                        ));
                    }
                };
                self.bump();
                return Ok(Node {
                    kind,
                    span: tok.span.start..num.span.end,
                });
            }
            Tk::Name(word) => {
                // `Conv2d(1, 20, ReLU()`: a layer where an argument should be means the
                // call before it was not closed.
                if self.is_call_start(1) {
                    return Err(self.unclosed(open, &tok));
                }
                match word.as_str() {
                    "True" => NodeKind::Bool(true),
                    "False" => NodeKind::Bool(false),
                    "None" => NodeKind::None,
                    w => NodeKind::Str(w.to_string()),
                }
            }
            Tk::LParen | Tk::LBracket => return self.tuple(depth),
            _ => {
                return Err(self.err(
                    tok.span.clone(),
                    format!("expected a value, found {}", self.describe(&tok)),
                ));
            }
        };
        self.bump();
        Ok(Node {
            kind,
            span: tok.span,
        })
    }

    /// `(a, b)`, `[a, b]`, `(a,)`, `()`; `(a)` is just `a`, as in Python.
    fn tuple(&mut self, depth: usize) -> Result<Node> {
        let open_tok = self.peek();
        if depth >= MAX_NESTING {
            return Err(self.err(
                open_tok.span,
                format!("tuples nested more than {MAX_NESTING} deep"),
            ));
        }
        self.bump();
        let paren = open_tok.kind == Tk::LParen;
        let (close, close_ch) = if paren {
            (Tk::RParen, ')')
        } else {
            (Tk::RBracket, ']')
        };
        let open = Open {
            what: if paren { "(" } else { "[" }.to_string(),
            close: close_ch,
            at: open_tok.span.start,
        };
        let mut items = Vec::new();
        let mut comma = false;
        let end = loop {
            let tok = self.peek();
            if tok.kind == close {
                self.bump();
                break tok.span.end;
            }
            if !starts_value(&tok.kind) {
                return Err(self.unclosed(&open, &tok));
            }
            items.push(self.value(&open, depth + 1)?);
            let tok = self.peek();
            if tok.kind == Tk::Comma {
                self.bump();
                comma = true;
            } else if tok.kind != close {
                return Err(self.unclosed(&open, &tok));
            }
        };
        let span = open_tok.span.start..end;
        if paren && !comma && items.len() == 1 {
            if let Some(mut only) = items.pop() {
                only.span = span;
                return Ok(only);
            }
        }
        Ok(Node {
            kind: NodeKind::Tuple(items),
            span,
        })
    }
}

fn public_value(text: &str, node: Node) -> Result<Value> {
    Ok(match node.kind {
        NodeKind::Int(v) => Value::Int(v),
        NodeKind::BigInt => {
            return Err(spec_error(
                text,
                node.span.clone(),
                format!(
                    "the integer {} does not fit in 64 bits",
                    clip(&text[node.span])
                ),
            ));
        }
        NodeKind::Float(v) => Value::Float(v),
        NodeKind::Bool(b) => Value::Bool(b),
        NodeKind::None => Value::None,
        NodeKind::Str(s) => Value::Str(s),
        NodeKind::Tuple(items) => Value::Tuple(
            items
                .into_iter()
                .map(|n| public_value(text, n))
                .collect::<Result<_>>()?,
        ),
    })
}

// ---------------------------------------------------------------------------------------
// Names and signatures

/// Optimal-string-alignment distance: Levenshtein plus adjacent swaps (`Linaer`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word` ignoring case (`Conv2D`, `Relu`), if close enough to
/// be a typo.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Long words are not typos of short names, and would cost time to compare.
    if word.len() > 64 {
        return None;
    }
    let w = word.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(&w, &c.to_ascii_lowercase());
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let limit = (w.chars().count() / 3).max(2);
    best.filter(|&(d, _)| d <= limit).map(|(_, c)| c)
}

/// One parameter of a PyTorch constructor.
struct Param {
    name: &'static str,
    /// PyTorch's default as it spells it; `None` for a required parameter.
    default: Option<&'static str>,
    /// Accepted by keyword only: the `in_channels=0` / `in_features=0` PyTorch prints for
    /// lazy layers, which is not in their signature.
    keyword_only: bool,
}

const fn req(name: &'static str) -> Param {
    Param {
        name,
        default: None,
        keyword_only: false,
    }
}

const fn opt(name: &'static str, default: &'static str) -> Param {
    Param {
        name,
        default: Some(default),
        keyword_only: false,
    }
}

const fn kw(name: &'static str, default: &'static str) -> Param {
    Param {
        name,
        default: Some(default),
        keyword_only: true,
    }
}

const CONV2D: &[Param] = &[
    req("in_channels"),
    req("out_channels"),
    req("kernel_size"),
    opt("stride", "1"),
    opt("padding", "0"),
    opt("dilation", "1"),
    opt("groups", "1"),
    opt("bias", "True"),
    opt("padding_mode", "'zeros'"),
];
const LAZY_CONV2D: &[Param] = &[
    req("out_channels"),
    req("kernel_size"),
    opt("stride", "1"),
    opt("padding", "0"),
    opt("dilation", "1"),
    opt("groups", "1"),
    opt("bias", "True"),
    opt("padding_mode", "'zeros'"),
    kw("in_channels", "0"),
];
const LINEAR: &[Param] = &[req("in_features"), req("out_features"), opt("bias", "True")];
const LAZY_LINEAR: &[Param] = &[
    req("out_features"),
    opt("bias", "True"),
    kw("in_features", "0"),
];
const MAXPOOL2D: &[Param] = &[
    req("kernel_size"),
    opt("stride", "None"),
    opt("padding", "0"),
    opt("dilation", "1"),
    opt("return_indices", "False"),
    opt("ceil_mode", "False"),
];
const AVGPOOL2D: &[Param] = &[
    req("kernel_size"),
    opt("stride", "None"),
    opt("padding", "0"),
    opt("ceil_mode", "False"),
    opt("count_include_pad", "True"),
    opt("divisor_override", "None"),
];
const RELU: &[Param] = &[opt("inplace", "False")];
const NO_ARGS: &[Param] = &[];
const FLATTEN: &[Param] = &[opt("start_dim", "1"), opt("end_dim", "-1")];
const DROPOUT: &[Param] = &[opt("p", "0.5"), opt("inplace", "False")];
const SOFTMAX: &[Param] = &[opt("dim", "None")];

/// `Conv2d(in_channels, out_channels, kernel_size, stride=1, …)`: PyTorch's signature.
fn signature(layer: &str, sig: &[Param]) -> String {
    let parts: Vec<String> = sig
        .iter()
        .filter(|p| !p.keyword_only)
        .map(|p| match p.default {
            Some(d) => format!("{}={d}", p.name),
            None => p.name.to_string(),
        })
        .collect();
    format!("{layer}({})", parts.join(", "))
}

/// A call's arguments matched to a signature, Python's way.
struct Bound<'a> {
    text: &'a str,
    call: &'a Call,
    layer: &'static str,
    sig: &'static [Param],
    slots: Vec<Option<&'a Node>>,
}

impl<'a> Bound<'a> {
    /// `lazy_in` names the keyword-only parameter a leading positional `0` fills:
    /// PyTorch prints `LazyConv2d(0, 20, kernel_size=…)` although its signature starts
    /// at out_channels.
    fn new(
        text: &'a str,
        call: &'a Call,
        layer: &'static str,
        sig: &'static [Param],
        lazy_in: Option<&'static str>,
    ) -> Result<Self> {
        let mut b = Bound {
            text,
            call,
            layer,
            sig,
            slots: vec![None; sig.len()],
        };
        let positional: Vec<usize> = (0..sig.len()).filter(|&i| !sig[i].keyword_only).collect();
        let given = call.args.iter().filter(|a| a.key.is_none()).count();
        let mut args = call.args.iter().peekable();
        if let (Some(name), Some(first)) = (lazy_in, args.peek()) {
            if first.key.is_none() && matches!(first.value.kind, NodeKind::Int(0)) && given >= 2 {
                if let Some(slot) = sig.iter().position(|p| p.name == name) {
                    b.slots[slot] = Some(&first.value);
                    args.next();
                }
            }
        }
        // The placeholder 0 of a lazy print is not one of PyTorch's parameters.
        let given = args.clone().filter(|a| a.key.is_none()).count();
        let mut next = 0;
        for arg in args {
            let slot = match &arg.key {
                None => {
                    let Some(&slot) = positional.get(next) else {
                        let names: Vec<&str> = positional.iter().map(|&i| sig[i].name).collect();
                        let were = if given == 1 { "was" } else { "were" };
                        return Err(b.fail(
                            arg.span(),
                            if names.is_empty() {
                                format!("takes no arguments, but {given} {were} given")
                            } else {
                                format!(
                                    "takes at most {} positional arguments ({}), but {given} \
                                     {were} given",
                                    names.len(),
                                    names.join(", ")
                                )
                            },
                        ));
                    };
                    next += 1;
                    slot
                }
                Some((key, span)) => {
                    let Some(slot) = sig.iter().position(|p| p.name == key) else {
                        let hint = match closest(key, sig.iter().map(|p| p.name)) {
                            Some(s) => format!("; did you mean '{s}'?"),
                            None => ";".to_string(),
                        };
                        return Err(b.fail(
                            span.clone(),
                            format!(
                                "has no argument '{}'{hint} PyTorch's signature is {}",
                                clip(key),
                                signature(layer, sig)
                            ),
                        ));
                    };
                    slot
                }
            };
            if b.slots[slot].is_some() {
                return Err(b.fail(
                    arg.span(),
                    format!("got multiple values for argument '{}'", sig[slot].name),
                ));
            }
            b.slots[slot] = Some(&arg.value);
        }
        for (p, slot) in sig.iter().zip(&b.slots) {
            if p.default.is_none() && slot.is_none() {
                return Err(b.fail(
                    call.span.clone(),
                    format!(
                        "is missing the required argument '{}'; PyTorch's signature is {}",
                        p.name,
                        signature(layer, sig)
                    ),
                ));
            }
        }
        Ok(b)
    }

    /// An error whose subject is the layer: `Conv2d takes at most …`.
    fn fail(&self, span: Range<usize>, message: impl fmt::Display) -> Error {
        spec_error(self.text, span, format!("{} {message}", self.layer))
    }

    /// An error about one of its arguments: `Conv2d: stride must be at least 1`.
    fn bad(&self, span: Range<usize>, message: impl fmt::Display) -> Error {
        spec_error(self.text, span, format!("{}: {message}", self.layer))
    }

    fn get(&self, name: &str) -> Option<&'a Node> {
        let slot = self.sig.iter().position(|p| p.name == name)?;
        self.slots[slot]
    }

    fn src(&self, node: &Node) -> String {
        clip(&self.text[node.span.clone()])
    }

    fn expects(&self, name: &str, node: &Node, what: &str) -> Error {
        let hint = match &node.kind {
            NodeKind::Str(s) if ["true", "false", "none", "null"].contains(&s.as_str()) => {
                " (Python spells them True, False and None)"
            }
            _ => "",
        };
        self.bad(
            node.span.clone(),
            format!("{name} expects {what}, got {}{hint}", self.src(node)),
        )
    }

    /// Reached only if `Bound::new` let a required argument through: an error, not a
    /// panic, all the same.
    fn required<T>(&self, v: Option<T>, name: &str) -> Result<T> {
        v.ok_or_else(|| {
            self.fail(
                self.call.span.clone(),
                format!("is missing the required argument '{name}'"),
            )
        })
    }

    fn count_of(&self, name: &str, node: &Node, min: usize) -> Result<usize> {
        match node.kind {
            NodeKind::Int(v) => {
                let fits = usize::try_from(v).ok().filter(|&u| u >= min);
                fits.ok_or_else(|| {
                    let rule = if min == 0 {
                        "must not be negative".to_string()
                    } else {
                        format!("must be at least {min}")
                    };
                    self.bad(node.span.clone(), format!("{name} {rule}, got {v}"))
                })
            }
            NodeKind::BigInt => Err(self.bad(
                node.span.clone(),
                format!(
                    "{name} = {} does not fit in a 64-bit integer",
                    self.src(node)
                ),
            )),
            _ => Err(self.expects(name, node, "an int")),
        }
    }

    /// A size: an int of at least `min`.
    fn size(&self, name: &str, min: usize) -> Result<Option<usize>> {
        self.get(name)
            .map(|n| self.count_of(name, n, min))
            .transpose()
    }

    /// kernel_size, stride, padding: an int or a (height, width) pair.
    fn size2(&self, name: &str, min: usize) -> Result<Option<Size2>> {
        let Some(node) = self.get(name) else {
            return Ok(None);
        };
        let what = "an int or a (height, width) tuple of ints";
        match &node.kind {
            NodeKind::Tuple(items) => match items.as_slice() {
                [h, w] => Ok(Some(Size2(
                    self.count_of(name, h, min)?,
                    self.count_of(name, w, min)?,
                ))),
                _ => Err(self.bad(
                    node.span.clone(),
                    format!(
                        "{name} expects {what}; {} has {} values, not 2",
                        self.src(node),
                        items.len()
                    ),
                )),
            },
            NodeKind::Int(_) | NodeKind::BigInt => {
                let v = self.count_of(name, node, min)?;
                Ok(Some(Size2(v, v)))
            }
            _ => Err(self.expects(name, node, what)),
        }
    }

    fn flag(&self, name: &str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Node {
                kind: NodeKind::Bool(b),
                ..
            }) => Ok(Some(*b)),
            Some(node) => Err(self.expects(name, node, "True or False")),
        }
    }

    fn int(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(Node {
                kind: NodeKind::Int(v),
                ..
            }) => Ok(Some(*v)),
            Some(
                node @ Node {
                    kind: NodeKind::BigInt,
                    ..
                },
            ) => Err(self.bad(
                node.span.clone(),
                format!(
                    "{name} = {} does not fit in a 64-bit integer",
                    self.src(node)
                ),
            )),
            Some(node) => Err(self.expects(name, node, "an int")),
        }
    }

    fn is_none(&self, name: &str) -> bool {
        matches!(
            self.get(name),
            Some(Node {
                kind: NodeKind::None,
                ..
            })
        )
    }

    /// Requires an optional argument to keep the one value seqnet implements.
    fn only<T: PartialEq + fmt::Display>(
        &self,
        name: &str,
        value: Option<T>,
        supported: T,
    ) -> Result<()> {
        match (value, self.get(name)) {
            (Some(v), Some(node)) if v != supported => Err(self.bad(
                node.span.clone(),
                format!(
                    "{name}={} is not implemented in seqnet (only {name}={supported})",
                    self.src(node)
                ),
            )),
            _ => Ok(()),
        }
    }

    /// `in_channels=0` / `in_features=0` of a lazy layer's print: anything else would be
    /// silently ignored, so it is an error pointing to the non-lazy layer.
    fn lazy_placeholder(&self, name: &str, fixed: &str) -> Result<()> {
        let Some(node) = self.get(name) else {
            return Ok(());
        };
        match node.kind {
            NodeKind::Int(0) => Ok(()),
            NodeKind::Int(v) => Err(self.fail(
                node.span.clone(),
                format!(
                    "infers {name} from its input (PyTorch prints {name}=0 until then), so \
                     {name}={v} cannot be given; to fix it, use {}",
                    fixed.replace("{}", &v.to_string())
                ),
            )),
            _ => Err(self.expects(name, node, "0 (the placeholder PyTorch prints)")),
        }
    }
}

/// Size2 as PyTorch prints it, for messages.
fn show2(s: Size2) -> String {
    if s.0 == s.1 {
        s.0.to_string()
    } else {
        format!("({}, {})", s.0, s.1)
    }
}

// ---------------------------------------------------------------------------------------
// Layers

fn make_layer(text: &str, call: &Call) -> Result<Box<dyn Layer>> {
    match call.name.as_str() {
        "Conv2d" => conv2d(text, call, false),
        "LazyConv2d" => conv2d(text, call, true),
        "Linear" => linear(text, call, false),
        "LazyLinear" => linear(text, call, true),
        "MaxPool2d" => maxpool2d(text, call),
        "AvgPool2d" => avgpool2d(text, call),
        "ReLU" => {
            let b = Bound::new(text, call, "ReLU", RELU, None)?;
            // inplace only saves memory in PyTorch; the result is the same.
            b.flag("inplace")?;
            Ok(Box::new(ReLU::new()))
        }
        "Sigmoid" => {
            Bound::new(text, call, "Sigmoid", NO_ARGS, None)?;
            Ok(Box::new(Sigmoid::new()))
        }
        "Tanh" => {
            Bound::new(text, call, "Tanh", NO_ARGS, None)?;
            Ok(Box::new(Tanh::new()))
        }
        "Flatten" => flatten(text, call),
        "Dropout" => dropout(text, call),
        "Softmax" => softmax(text, call, "Softmax"),
        "LogSoftmax" => softmax(text, call, "LogSoftmax"),
        _ => Err(unknown_layer(text, call)),
    }
}

fn unknown_layer(text: &str, call: &Call) -> Error {
    let name = call.name.as_str();
    let shown = clip(name);
    let last = name.rsplit('.').next().unwrap_or(name);
    let supported = LAYER_NAMES.join(", ");
    let message = if last != name && LAYER_NAMES.contains(&last) {
        format!("unknown prefix in '{shown}'; write nn.{last}, torch.nn.{last} or just {last}")
    } else if NOT_IMPLEMENTED.contains(&last) {
        format!(
            "PyTorch's nn.{last} is not implemented in seqnet; the layers it has are {supported}"
        )
    } else {
        match closest(last, LAYER_NAMES.iter().copied()) {
            Some(s) => format!(
                "unknown layer '{shown}'; did you mean {s}? The layers seqnet has are \
                 {supported}"
            ),
            None => format!("unknown layer '{shown}'; the layers seqnet has are {supported}"),
        }
    };
    spec_error(text, call.name_span.clone(), message)
}

fn conv2d(text: &str, call: &Call, lazy: bool) -> Result<Box<dyn Layer>> {
    let (layer, sig) = if lazy {
        ("LazyConv2d", LAZY_CONV2D)
    } else {
        ("Conv2d", CONV2D)
    };
    let b = Bound::new(text, call, layer, sig, lazy.then_some("in_channels"))?;
    let in_channels = if lazy {
        b.lazy_placeholder("in_channels", "Conv2d({}, out_channels, kernel_size)")?;
        None
    } else {
        let c = b.required(b.size("in_channels", 0)?, "in_channels")?;
        if c == 0 {
            let node = b
                .get("in_channels")
                .map_or(call.span.clone(), |n| n.span.clone());
            return Err(b.bad(
                node,
                "in_channels must be at least 1, got 0; to infer it from the input, use \
                 LazyConv2d(out_channels, kernel_size)",
            ));
        }
        Some(c)
    };
    let out_channels = b.required(b.size("out_channels", 1)?, "out_channels")?;
    let kernel = b.required(b.size2("kernel_size", 1)?, "kernel_size")?;
    let stride = b.size2("stride", 1)?.unwrap_or(Size2(1, 1));
    let padding = conv_padding(&b, kernel, stride)?;
    let dilation = b.size2("dilation", 1)?.map(show2);
    b.only("dilation", dilation, "1".to_string())?;
    b.only("groups", b.size("groups", 1)?, 1)?;
    let bias = b.flag("bias")?.unwrap_or(true);
    if let Some(node) = b.get("padding_mode") {
        match &node.kind {
            NodeKind::Str(m) if m == "zeros" => {}
            NodeKind::Str(m) if ["reflect", "replicate", "circular"].contains(&m.as_str()) => {
                return Err(b.bad(
                    node.span.clone(),
                    format!("padding_mode='{m}' is not implemented in seqnet (only 'zeros')"),
                ));
            }
            _ => {
                return Err(b.expects(
                    "padding_mode",
                    node,
                    "one of 'zeros', 'reflect', 'replicate' or 'circular'",
                ));
            }
        }
    }
    let conv = match in_channels {
        Some(c) => Conv2d::new(c, out_channels, kernel),
        None => LazyConv2d::new(out_channels, kernel),
    };
    Ok(Box::new(conv.stride(stride).padding(padding).bias(bias)))
}

/// Conv2d's padding: numbers, or PyTorch's 'valid' (none) and 'same' (the output keeps
/// the input size, which with stride 1 and an odd kernel is k // 2 on each side).
fn conv_padding(b: &Bound, kernel: Size2, stride: Size2) -> Result<Size2> {
    let Some(node) = b.get("padding") else {
        return Ok(Size2(0, 0));
    };
    let NodeKind::Str(mode) = &node.kind else {
        return Ok(b.size2("padding", 0)?.unwrap_or(Size2(0, 0)));
    };
    match mode.as_str() {
        "valid" => Ok(Size2(0, 0)),
        "same" if stride != Size2(1, 1) => Err(b.bad(
            node.span.clone(),
            format!(
                "padding='same' needs stride 1 (PyTorch rejects it for strided \
                 convolutions), but stride is {}; give the padding as numbers",
                show2(stride)
            ),
        )),
        "same" if kernel.0 % 2 == 0 || kernel.1 % 2 == 0 => Err(b.bad(
            node.span.clone(),
            format!(
                "padding='same' with the even kernel_size {} needs more padding on one \
                 side than the other, which seqnet does not implement; use an odd \
                 kernel_size or give the padding as numbers",
                show2(kernel)
            ),
        )),
        "same" => Ok(Size2(kernel.0 / 2, kernel.1 / 2)),
        _ => Err(b.expects(
            "padding",
            node,
            "an int, a (height, width) tuple, 'valid' or 'same'",
        )),
    }
}

fn linear(text: &str, call: &Call, lazy: bool) -> Result<Box<dyn Layer>> {
    let (layer, sig) = if lazy {
        ("LazyLinear", LAZY_LINEAR)
    } else {
        ("Linear", LINEAR)
    };
    let b = Bound::new(text, call, layer, sig, lazy.then_some("in_features"))?;
    let in_features = if lazy {
        b.lazy_placeholder("in_features", "Linear({}, out_features)")?;
        None
    } else {
        let f = b.required(b.size("in_features", 0)?, "in_features")?;
        if f == 0 {
            let node = b
                .get("in_features")
                .map_or(call.span.clone(), |n| n.span.clone());
            return Err(b.bad(
                node,
                "in_features must be at least 1, got 0; to infer it from the input, use \
                 LazyLinear(out_features)",
            ));
        }
        Some(f)
    };
    let out_features = b.required(b.size("out_features", 1)?, "out_features")?;
    let bias = b.flag("bias")?.unwrap_or(true);
    let linear = match in_features {
        Some(f) => Linear::new(f, out_features),
        None => LazyLinear::new(out_features),
    };
    Ok(Box::new(linear.bias(bias)))
}

/// What MaxPool2d and AvgPool2d share: kernel, stride (None: the kernel), padding.
fn pool_sizes(b: &Bound) -> Result<(Size2, Option<Size2>, Size2)> {
    let kernel = b.required(b.size2("kernel_size", 1)?, "kernel_size")?;
    let stride = if b.is_none("stride") {
        None
    } else {
        b.size2("stride", 1)?
    };
    let padding = b.size2("padding", 0)?.unwrap_or(Size2(0, 0));
    Ok((kernel, stride, padding))
}

fn maxpool2d(text: &str, call: &Call) -> Result<Box<dyn Layer>> {
    let b = Bound::new(text, call, "MaxPool2d", MAXPOOL2D, None)?;
    let (kernel, stride, padding) = pool_sizes(&b)?;
    let dilation = b.size2("dilation", 1)?.map(show2);
    b.only("dilation", dilation, "1".to_string())?;
    b.only("return_indices", b.flag("return_indices")?, false)?;
    let ceil_mode = b.flag("ceil_mode")?.unwrap_or(false);
    let mut pool = MaxPool2d::new(kernel).padding(padding).ceil_mode(ceil_mode);
    if let Some(s) = stride {
        pool = pool.stride(s);
    }
    Ok(Box::new(pool))
}

fn avgpool2d(text: &str, call: &Call) -> Result<Box<dyn Layer>> {
    let b = Bound::new(text, call, "AvgPool2d", AVGPOOL2D, None)?;
    let (kernel, stride, padding) = pool_sizes(&b)?;
    let ceil_mode = b.flag("ceil_mode")?.unwrap_or(false);
    let count_include_pad = b.flag("count_include_pad")?.unwrap_or(true);
    if !b.is_none("divisor_override") {
        if let Some(d) = b.size("divisor_override", 1)? {
            let span = b
                .get("divisor_override")
                .map_or(call.span.clone(), |n| n.span.clone());
            return Err(b.bad(
                span,
                format!(
                    "divisor_override={d} is not implemented in seqnet (only None: the \
                     window area divides)"
                ),
            ));
        }
    }
    let mut pool = AvgPool2d::new(kernel)
        .padding(padding)
        .ceil_mode(ceil_mode)
        .count_include_pad(count_include_pad);
    if let Some(s) = stride {
        pool = pool.stride(s);
    }
    Ok(Box::new(pool))
}

fn flatten(text: &str, call: &Call) -> Result<Box<dyn Layer>> {
    let b = Bound::new(text, call, "Flatten", FLATTEN, None)?;
    for (name, supported) in [("start_dim", 1), ("end_dim", -1)] {
        if let (Some(v), Some(node)) = (b.int(name)?, b.get(name)) {
            if v != supported {
                return Err(b.bad(
                    node.span.clone(),
                    format!(
                        "{name}={v} is not implemented in seqnet; Flatten flattens every \
                         dimension after the batch (start_dim=1, end_dim=-1)"
                    ),
                ));
            }
        }
    }
    Ok(Box::new(Flatten::new()))
}

fn dropout(text: &str, call: &Call) -> Result<Box<dyn Layer>> {
    let b = Bound::new(text, call, "Dropout", DROPOUT, None)?;
    let p = match b.get("p") {
        None => 0.5,
        Some(node) => {
            let p = match node.kind {
                NodeKind::Float(v) => v as f32,
                NodeKind::Int(v) => v as f32,
                _ => return Err(b.expects("p", node, "a float (the fraction dropped, e.g. 0.5)")),
            };
            // The range is Dropout's to check when built; a non-finite p would print as
            // `inf`, which no spec can read back.
            if !p.is_finite() {
                return Err(b.bad(
                    node.span.clone(),
                    format!("p must be a finite number in [0, 1), got {}", b.src(node)),
                ));
            }
            p
        }
    };
    b.flag("inplace")?;
    Ok(Box::new(Dropout::new(p)))
}

fn softmax(text: &str, call: &Call, layer: &'static str) -> Result<Box<dyn Layer>> {
    let b = Bound::new(text, call, layer, SOFTMAX, None)?;
    let dim = if b.is_none("dim") {
        None
    } else {
        b.int("dim")?
    };
    let Some(dim) = dim else {
        let span = b.get("dim").map_or(call.span.clone(), |n| n.span.clone());
        return Err(b.fail(
            span,
            format!(
                "needs dim (PyTorch's implicit choice is deprecated); seqnet normalises \
                 over the classes: {layer}(dim=1)"
            ),
        ));
    };
    // The layer checks dim against the shape it receives when built.
    Ok(if layer == "Softmax" {
        Box::new(Softmax::new(dim))
    } else {
        Box::new(LogSoftmax::new(dim))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_NET: &str = "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> \
                            LazyLinear(100) -> ReLU() -> Linear(100, 10)";

    const PYTORCH_PRINT: &str = "Sequential(
  (0): Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1))
  (1): ReLU()
  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (3): Flatten(start_dim=1, end_dim=-1)
  (4): Linear(in_features=2880, out_features=100, bias=True)
  (5): ReLU()
  (6): Dropout(p=0.5, inplace=False)
  (7): Linear(in_features=100, out_features=10, bias=True)
)";

    fn mnist(text: &str) -> Sequential {
        match build(text, &[1, 28, 28], 7) {
            Ok(net) => net,
            Err(e) => panic!("{text:?} should build:\n{e}"),
        }
    }

    fn params(net: &Sequential) -> Vec<(String, Vec<f32>)> {
        net.named_params()
            .into_iter()
            .map(|(n, p)| (n, p.value.data().to_vec()))
            .collect()
    }

    /// The message, and the 1-based column of the first caret under the excerpt line.
    fn caret(err: &Error) -> (String, usize) {
        let Error::Spec { message, excerpt } = err else {
            panic!("expected a spec error, got {err}");
        };
        let lines: Vec<&str> = excerpt.lines().collect();
        assert_eq!(lines.len(), 2, "excerpt: {excerpt:?}");
        let col = lines[1].chars().position(|c| c == '^').expect("a caret") - 2 + 1;
        (message.clone(), col)
    }

    #[test]
    fn arrow_form_builds_the_seed_network() {
        let net = mnist(SEED_NET);
        assert_eq!(net.num_params(), 289_630);
        assert_eq!(net.output_shape(), &[10]);
        assert_eq!(
            net.spec(),
            "Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1)) -> ReLU() -> \
             MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False) -> \
             Flatten(start_dim=1, end_dim=-1) -> Linear(in_features=2880, out_features=100, \
             bias=True) -> ReLU() -> Linear(in_features=100, out_features=10, bias=True)"
        );
    }

    #[test]
    fn separators_mix_freely() {
        let want = mnist(SEED_NET);
        for text in [
            "Conv2d(1, 20, 5), ReLU(), MaxPool2d(2), Flatten(), LazyLinear(100), ReLU(), Linear(100, 10)",
            "Conv2d(1, 20, 5)\nReLU\nMaxPool2d(2)\nFlatten\nLazyLinear(100)\nReLU\nLinear(100, 10)\n",
            "Conv2d(1,20,5) → ReLU → MaxPool2d(2) → Flatten → LazyLinear(100) → ReLU → Linear(100,10)",
            "  Conv2d(1, 20, 5) ->\n  ReLU(),\n\tMaxPool2d(2)   Flatten() -> LazyLinear(100),\r\n ReLU Linear(100, 10),",
            "\u{feff}# the book's network\nConv2d(1, 20, 5) -> ReLU() # conv\n-> MaxPool2d(2) -> Flatten() -> LazyLinear(100) -> ReLU() -> Linear(100, 10)",
            "Conv2d(1,20,5)ReLU()MaxPool2d(2)Flatten()LazyLinear(100)ReLU()Linear(100,10)",
        ] {
            let net = mnist(text);
            assert_eq!(net.spec(), want.spec(), "{text:?}");
            assert_eq!(params(&net), params(&want), "{text:?}");
        }
    }

    #[test]
    fn pytorch_print_is_the_same_network() {
        let printed = mnist(PYTORCH_PRINT);
        let written = mnist(
            "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(100) -> \
             ReLU() -> Dropout(0.5) -> Linear(100, 10)",
        );
        assert_eq!(printed.spec(), written.spec());
        assert_eq!(printed.num_params(), 289_630);
        assert_eq!(params(&printed), params(&written));
        // Without the Dropout, the same as the seed network, parameters included.
        let no_dropout = PYTORCH_PRINT
            .replace("  (6): Dropout(p=0.5, inplace=False)\n", "")
            .replace("(7):", "(6):");
        let seed = mnist(SEED_NET);
        assert_eq!(mnist(&no_dropout).spec(), seed.spec());
        assert_eq!(params(&mnist(&no_dropout)), params(&seed));
        // CRLF line endings, as pasted on Windows.
        let crlf = PYTORCH_PRINT.replace('\n', "\r\n");
        assert_eq!(mnist(&crlf).spec(), printed.spec());
    }

    #[test]
    fn python_code_is_the_same_network() {
        let text = "model = nn.Sequential(
    nn.Conv2d(1, 20, kernel_size=5),  # 20 feature maps
    nn.ReLU(inplace=True),
    nn.MaxPool2d(kernel_size=2, stride=2),
    torch.nn.Flatten(),
    nn.LazyLinear(100),
    nn.ReLU(),
    nn.Linear(in_features=100, out_features=10),
)";
        let net = mnist(text);
        assert_eq!(net.spec(), mnist(SEED_NET).spec());
        assert_eq!(params(&net), params(&mnist(SEED_NET)));
        let one_line = "nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), \
                        nn.Flatten(), nn.LazyLinear(100), nn.ReLU(), nn.Linear(100, 10))";
        assert_eq!(mnist(one_line).spec(), net.spec());
    }

    #[test]
    fn every_layer_round_trips() {
        let text = "Conv2d(3, 8, kernel_size=3, stride=2, padding=1, bias=False)
            -> ReLU(inplace=True)
            -> LazyConv2d(6, (3, 1), padding=(1, 0), padding_mode='zeros')
            -> Tanh()
            -> MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
            -> AvgPool2d((2, 3), stride=1, padding=(1, 1), ceil_mode=True, count_include_pad=False)
            -> Sigmoid()
            -> Flatten()
            -> Dropout(p=0.25)
            -> LazyLinear(32, bias=False)
            -> Linear(32, 10)
            -> LogSoftmax(dim=1)
            -> Softmax(dim=-1)";
        let net = build(text, &[3, 16, 16], 3).expect("builds");
        let spec = net.spec();
        for part in [
            "Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)",
            "Conv2d(8, 6, kernel_size=(3, 1), stride=(1, 1), padding=(1, 0))",
            "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True)",
            "AvgPool2d(kernel_size=(2, 3), stride=1, padding=1, ceil_mode=True, count_include_pad=False)",
            "Dropout(p=0.25, inplace=False)",
            "Linear(in_features=180, out_features=32, bias=False)",
            "LogSoftmax(dim=1) -> Softmax(dim=-1)",
        ] {
            assert!(spec.contains(part), "{part} not in {spec}");
        }
        let again = build(&spec, &[3, 16, 16], 3).expect("the spec reads back");
        assert_eq!(again.spec(), spec);
        assert_eq!(params(&again), params(&net));
        let names: Vec<String> = parse(&spec).unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names.len(), 13);
        // Unbuilt layers (lazy ones print their placeholder 0) read back too.
        for layer in to_layers(text).unwrap() {
            let repr = layer.repr();
            let back = to_layers(&repr).unwrap_or_else(|e| panic!("{repr}: {e}"));
            assert_eq!(back.len(), 1);
            assert_eq!(back[0].repr(), repr);
        }
    }

    #[test]
    fn lazy_prints_are_lazy_layers() {
        let printed = "LazyConv2d(0, 20, kernel_size=(5, 5), stride=(1, 1)) -> ReLU -> \
                       MaxPool2d(2) -> Flatten -> LazyLinear(in_features=0, out_features=100, \
                       bias=True) -> ReLU -> Linear(100, 10)";
        let layers = to_layers(printed).unwrap();
        assert_eq!(
            layers[0].repr(),
            "LazyConv2d(0, 20, kernel_size=(5, 5), stride=(1, 1))"
        );
        assert_eq!(
            layers[4].repr(),
            "LazyLinear(in_features=0, out_features=100, bias=True)"
        );
        assert_eq!(mnist(printed).spec(), mnist(SEED_NET).spec());
        // PyTorch's real signatures, and the placeholder by keyword.
        for text in [
            "LazyConv2d(20, 5)",
            "LazyConv2d(20, kernel_size=5)",
            "LazyConv2d(in_channels=0, out_channels=20, kernel_size=5)",
            "nn.LazyConv2d(0, 20, 5)",
        ] {
            assert_eq!(
                to_layers(text).unwrap()[0].repr(),
                "LazyConv2d(0, 20, kernel_size=(5, 5), stride=(1, 1))",
                "{text}"
            );
        }
        for text in [
            "LazyLinear(100)",
            "LazyLinear(0, 100)",
            "LazyLinear(out_features=100)",
        ] {
            assert_eq!(
                to_layers(text).unwrap()[0].repr(),
                "LazyLinear(in_features=0, out_features=100, bias=True)"
            );
        }
    }

    #[test]
    fn parse_reports_values_and_spans() {
        let text = "nn.Conv2d(1, 20, kernel_size=(5, 5), padding='same', bias=False) → ReLU, \
                    Dropout(.5)\nFlatten(end_dim=-1) Foo(1e-3, -2.5, None, [1, 2], (3,), (4), ())";
        let calls = parse(text).unwrap();
        let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["Conv2d", "ReLU", "Dropout", "Flatten", "Foo"]);
        assert_eq!(calls[0].args, [Value::Int(1), Value::Int(20)]);
        assert_eq!(
            calls[0].kwargs,
            [
                (
                    "kernel_size".to_string(),
                    Value::Tuple(vec![Value::Int(5), Value::Int(5)])
                ),
                ("padding".to_string(), Value::Str("same".into())),
                ("bias".to_string(), Value::Bool(false)),
            ]
        );
        assert_eq!(
            &text[calls[0].span.clone()],
            "nn.Conv2d(1, 20, kernel_size=(5, 5), padding='same', bias=False)"
        );
        assert_eq!(&text[calls[1].span.clone()], "ReLU");
        assert!(calls[1].args.is_empty() && calls[1].kwargs.is_empty());
        assert_eq!(calls[2].args, [Value::Float(0.5)]);
        assert_eq!(calls[3].kwargs, [("end_dim".to_string(), Value::Int(-1))]);
        assert_eq!(
            calls[4].args,
            [
                Value::Float(1e-3),
                Value::Float(-2.5),
                Value::None,
                Value::Tuple(vec![Value::Int(1), Value::Int(2)]),
                Value::Tuple(vec![Value::Int(3)]),
                Value::Int(4),
                Value::Tuple(vec![]),
            ]
        );
        assert_eq!(
            &text[calls[4].span.clone()],
            "Foo(1e-3, -2.5, None, [1, 2], (3,), (4), ())"
        );
        let shown: Vec<String> = calls[4].args.iter().map(|v| v.to_string()).collect();
        assert_eq!(
            shown,
            ["0.001", "-2.5", "None", "(1, 2)", "(3,)", "4", "()"]
        );
    }

    #[test]
    fn padding_valid_and_same() {
        let repr = |t: &str| to_layers(t).unwrap()[0].repr();
        assert_eq!(
            repr("Conv2d(1, 4, (3, 5), padding='same')"),
            "Conv2d(1, 4, kernel_size=(3, 5), stride=(1, 1), padding=(1, 2))"
        );
        // PyTorch prints these strings unquoted.
        assert_eq!(
            repr("Conv2d(1, 4, 3, padding=same)"),
            repr("Conv2d(1, 4, 3, padding=1)")
        );
        assert_eq!(
            repr("Conv2d(1, 4, 3, padding=\"valid\")"),
            repr("Conv2d(1, 4, 3)")
        );
        let net = build("Conv2d(1, 4, 5, padding='same')", &[1, 28, 28], 0).unwrap();
        assert_eq!(net.output_shape(), &[4, 28, 28]);
    }

    #[test]
    fn malformed_specs_point_at_the_mistake() {
        // (spec, words the message must contain, line, column of the caret)
        #[rustfmt::skip]
        let table: &[(&str, &[&str], usize, usize)] = &[
            ("Conv2d(1, 20, 5 -> ReLU()", &["expected ')' to close 'Conv2d(' opened at column 1"], 1, 17),
            ("Conv2d(1, 20, 5", &["expected ')'", "'Conv2d('", "spec ends"], 1, 16),
            ("Conv2d(1, 20, 5\nReLU()", &["expected ')'", "opened at line 1, column 1"], 2, 1),
            ("Conv2d(1, 20, (5, 5)", &["expected ')'", "'Conv2d('"], 1, 21),
            ("Conv2d(1, 20, (5, 5]", &["expected ')' to close '(' opened at column 15"], 1, 20),
            ("Conv2d(1, 20 5)", &["expected ','"], 1, 14),
            ("Conv2d(1,, 20, 5)", &["unexpected ','", "missing"], 1, 10),
            ("Conv2d(1, 20, 5))", &["unmatched ')'"], 1, 17),
            ("ReLU(\n", &["expected ')' to close 'ReLU('", "spec ends"], 1, 6),
            ("", &["names no layers", "e.g. Conv2d(1, 20, 5)"], 1, 1),
            ("  \n  # only a comment\n", &["names no layers"], 2, 3),
            ("Sequential()", &["names no layers"], 1, 1),
            ("-> ReLU()", &["no layer before"], 1, 1),
            ("ReLU() ->", &["no layer after"], 1, 8),
            ("ReLU() -> -> Flatten()", &["second '->'", "layer missing"], 1, 11),
            ("Sequential(ReLU() ->)", &["no layer after"], 1, 19),
            ("ReLU() = 3", &["expected a layer", "'='"], 1, 8),
            ("5", &["expected a layer", "'5'"], 1, 1),
            ("ReLU()\u{7}", &["control character U+0007"], 1, 7),
            ("Conv2d(1, 20, 5) ; ReLU()", &["unexpected character ';'"], 1, 18),
            ("Conv2d(1, 20, 5).stride(2)", &["unexpected '.'", "stride=2"], 1, 17),
            ("Conv2d(1, 20, 5) => ReLU", &["'=>' is not an arrow"], 1, 18),
            ("ReLU() > Tanh()", &["unexpected '>'", "->"], 1, 8),
            ("Conv2d(1, 20, 5) — ReLU", &["dash"], 1, 18),
            ("Dropout(p=‘0.5’)", &["curly quote"], 1, 11),
            ("Dropout(p='0.5)", &["not closed"], 1, 11),
            ("Conv2d(1, 20, 5x5)", &["'5x5' is not a number", "(5, 5)"], 1, 15),
            ("Conv2d(1, 20, -)", &["number after '-'"], 1, 15),
            ("Conv2d(1, 20, kernel_size=)", &["value after 'kernel_size='"], 1, 27),
            ("Conv2d(stride=2, 1, 20, 5)", &["positional argument follows keyword argument"], 1, 18),
            ("Conv2D(1, 20, 5)", &["unknown layer 'Conv2D'", "did you mean Conv2d?", "LogSoftmax"], 1, 1),
            ("Conv2d(1, 20, 5) -> Relu()", &["'Relu'", "did you mean ReLU?"], 1, 21),
            ("Maxpool2d(2)", &["did you mean MaxPool2d?"], 1, 1),
            ("nn.Conv2d(1, 20, 5) nn.Linaer(2, 3)", &["did you mean Linear?"], 1, 21),
            ("F.relu", &["did you mean ReLU?"], 1, 1),
            ("Whatever()", &["unknown layer 'Whatever'", "Conv2d, LazyConv2d"], 1, 1),
            ("BatchNorm2d(20)", &["nn.BatchNorm2d is not implemented"], 1, 1),
            ("torch.Conv2d(1, 2, 3)", &["unknown prefix", "nn.Conv2d"], 1, 1),
            ("Conv2d(1, 20, kernel_size=True)", &["Conv2d", "kernel_size", "int", "True"], 1, 27),
            ("Dropout(p='a')", &["Dropout", "p expects a float", "'a'"], 1, 11),
            ("Linear(10, 5, bias='yes')", &["Linear", "bias expects True or False"], 1, 20),
            ("Linear(10, 5, bias=true)", &["True or False", "Python spells"], 1, 20),
            ("Conv2d(1, 20, 5, stride=1, stride=2)", &["Conv2d", "multiple values", "'stride'"], 1, 28),
            ("Conv2d(1, 20, 5, 1, stride=2)", &["multiple values for argument 'stride'"], 1, 21),
            ("Conv2d(1, 20)", &["Conv2d", "missing", "'kernel_size'", "Conv2d(in_channels, out_channels, kernel_size, stride=1"], 1, 1),
            ("Linear(1, 2, True, 4)", &["Linear takes at most 3", "4 were given"], 1, 20),
            ("Sigmoid(1)", &["Sigmoid takes no arguments, but 1 was given"], 1, 9),
            ("LazyLinear(0, 10, True, 4)", &["LazyLinear takes at most 2 positional arguments (out_features, bias), but 3 were given"], 1, 25),
            ("Conv2d(1, 20, 5, kernal_size=3)", &["no argument 'kernal_size'", "did you mean 'kernel_size'?"], 1, 18),
            ("Dropout(rate=0.5)", &["Dropout has no argument 'rate'", "Dropout(p=0.5, inplace=False)"], 1, 9),
            ("Conv2d(1, -20, 5)", &["Conv2d", "out_channels must be at least 1", "-20"], 1, 11),
            ("Conv2d(1, 20, 5, padding=-1)", &["padding must not be negative"], 1, 26),
            ("Conv2d(1, 20, 5, stride=(2, 0))", &["stride must be at least 1, got 0"], 1, 29),
            ("Linear(99999999999999999999, 10)", &["Linear", "in_features", "does not fit"], 1, 8),
            ("Conv2d(0, 20, 5)", &["in_channels must be at least 1", "LazyConv2d"], 1, 8),
            ("Linear(0, 20)", &["in_features must be at least 1", "LazyLinear"], 1, 8),
            ("LazyLinear(in_features=784, out_features=10)", &["in_features=784", "Linear(784, out_features)"], 1, 24),
            ("LazyConv2d(in_channels=3, out_channels=20, kernel_size=5)", &["Conv2d(3, out_channels, kernel_size)"], 1, 24),
            ("Conv2d(1, 20, (5, 5, 5))", &["kernel_size", "3 values, not 2"], 1, 15),
            ("Conv2d(1, 20, 5, dilation=2)", &["dilation=2 is not implemented"], 1, 27),
            ("Conv2d(1, 20, 5, groups=2)", &["groups=2 is not implemented"], 1, 25),
            ("Conv2d(1, 20, 5, padding_mode='reflect')", &["padding_mode='reflect' is not implemented"], 1, 31),
            ("Conv2d(1, 20, 5, padding_mode='mirror')", &["padding_mode expects one of 'zeros'"], 1, 31),
            ("Conv2d(1, 20, 4, padding='same')", &["padding='same'", "even kernel_size 4"], 1, 26),
            ("Conv2d(1, 20, 5, stride=2, padding='same')", &["padding='same' needs stride 1"], 1, 36),
            ("Conv2d(1, 20, 5, padding='full')", &["padding expects an int, a (height, width) tuple, 'valid' or 'same'"], 1, 26),
            ("MaxPool2d(2, return_indices=True)", &["return_indices=True is not implemented"], 1, 29),
            ("MaxPool2d(2, dilation=(1, 2))", &["dilation=(1, 2) is not implemented"], 1, 23),
            ("AvgPool2d(2, divisor_override=3)", &["divisor_override=3 is not implemented"], 1, 31),
            ("Flatten(start_dim=2)", &["start_dim=2 is not implemented"], 1, 19),
            ("Flatten(1, 2)", &["end_dim=2 is not implemented"], 1, 12),
            ("Dropout(p=1e999)", &["finite"], 1, 11),
            ("Softmax()", &["Softmax needs dim", "Softmax(dim=1)"], 1, 1),
            ("LogSoftmax(dim=None)", &["LogSoftmax needs dim"], 1, 16),
            ("Softmax(dim=1.0)", &["dim expects an int"], 1, 13),
            ("Sequential(\n  (0): Conv2d(1, 20, 5)\n  (2): ReLU()\n)", &["index (2) is out of order", "(1):", "state_dict"], 3, 4),
            ("(0): ReLU() (0): Tanh()", &["index (0) is out of order"], 1, 14),
            ("Sequential(\n  (conv1): Conv2d(1, 20, 5)\n)", &["named child '(conv1)'", "state_dict"], 2, 4),
            ("Sequential(\n  (0) Conv2d(1, 20, 5)\n)", &["expected ':'"], 2, 7),
            ("Sequential(\n  (0): Conv2d(1, 20, 5)\n", &["expected ')' to close 'Sequential('", "line 1, column 1"], 2, 24),
            ("Sequential(Sequential(ReLU()))", &["nested Sequential"], 1, 12),
            ("Sequential(\n  (0): Sequential(\n    (0): ReLU()\n)\n)", &["nested Sequential"], 2, 8),
            ("nn.Sequential(OrderedDict([('relu', nn.ReLU())]))", &["OrderedDict", "names its children", "state_dict"], 1, 15),
            ("OrderedDict", &["OrderedDict", "names its children"], 1, 1),
            ("x = ReLU()", &["unexpected '='", "nn.Sequential"], 1, 3),
        ];
        let mut failures = Vec::new();
        for &(text, words, line, col) in table {
            let err = match to_layers(text) {
                Ok(_) => {
                    failures.push(format!("{text:?} should fail"));
                    continue;
                }
                Err(e) => e,
            };
            let (message, caret_col) = caret(&err);
            for w in words {
                if !message.contains(w) {
                    failures.push(format!("{text:?}: {w:?} not in {message:?}"));
                }
            }
            let at = format!("spec: line {line}, column {col}: ");
            if !message.starts_with(&at) || caret_col != col {
                failures.push(format!(
                    "{text:?}: expected {at:?}, caret column {caret_col}:\n{err}"
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn syntax_errors_come_from_parse_too() {
        assert!(parse("Conv2d(1, 20, 5 -> ReLU()").is_err());
        assert!(parse("").is_err());
        // Unknown names and arguments are for to_layers.
        assert!(parse("Whatever(x=1)").is_ok());
        let err = parse("Foo(99999999999999999999)").unwrap_err();
        assert!(caret(&err).0.contains("does not fit in 64 bits"));
    }

    #[test]
    fn caret_spans_the_offending_text() {
        let err = to_layers("Linear(10, 5, bias='yes')").unwrap_err();
        let Error::Spec { excerpt, .. } = &err else {
            panic!()
        };
        assert_eq!(
            excerpt,
            "  Linear(10, 5, bias='yes')\n                     ^^^^^"
        );
        assert!(err.to_string().contains("\n  Linear(10, 5, bias='yes')\n"));
    }

    #[test]
    fn long_lines_show_a_window() {
        let text = format!(
            "{}Relu() {}",
            "ReLU() ".repeat(2000),
            "Tanh() ".repeat(2000)
        );
        let err = to_layers(&text).unwrap_err();
        let Error::Spec { message, excerpt } = &err else {
            panic!()
        };
        assert!(message.contains("column 14001"), "{message}");
        let lines: Vec<Vec<char>> = excerpt.lines().map(|l| l.chars().collect()).collect();
        assert!(lines[0].len() < 90, "{excerpt}");
        let at = lines[1].iter().position(|&c| c == '^').unwrap();
        let under: String = lines[0][at..at + 6].iter().collect();
        assert_eq!(under, "Relu()");
        assert_eq!(lines[1].iter().filter(|&&c| c == '^').count(), 4);
        // At the start and the end of a long line too.
        for text in [
            format!("Relu {}", "ReLU ".repeat(3000)),
            format!("{}Relu", "ReLU ".repeat(3000)),
        ] {
            let err = to_layers(&text).unwrap_err();
            let Error::Spec { excerpt, .. } = &err else {
                panic!()
            };
            let lines: Vec<Vec<char>> = excerpt.lines().map(|l| l.chars().collect()).collect();
            assert!(lines[0].len() < 90);
            let at = lines[1].iter().position(|&c| c == '^').unwrap();
            let under: String = lines[0][at..at + 4].iter().collect();
            assert_eq!(under, "Relu");
        }
    }

    #[test]
    fn limits_are_errors() {
        let err = parse(&"ReLU ".repeat(14_000)).unwrap_err();
        assert!(caret(&err).0.contains("at most 65536 bytes"));
        // A multi-byte character straddling the cap.
        let err = parse(&format!("{}→→→", "a".repeat(MAX_SPEC_BYTES - 1))).unwrap_err();
        assert!(caret(&err).0.contains("64 KiB"));

        let ok = "Tanh,".repeat(MAX_LAYERS);
        assert_eq!(to_layers(&ok).unwrap().len(), MAX_LAYERS);
        let err = parse(&"Tanh,".repeat(MAX_LAYERS + 1)).unwrap_err();
        let (message, col) = caret(&err);
        assert!(message.contains("more than 10000 layers"), "{message}");
        assert!(message.contains("column 50001"), "{message}");
        assert!(col < 80);

        let deep = format!("Linear({}1", "(".repeat(40));
        let (message, col) = caret(&parse(&deep).unwrap_err());
        assert!(message.contains("nested more than 32 deep"), "{message}");
        assert_eq!(col, 8 + 32);
    }

    #[test]
    fn pathological_inputs_fail_fast() {
        let n = MAX_SPEC_BYTES;
        let inputs = [
            "(".repeat(n),
            ")".repeat(n),
            "[".repeat(n),
            "Conv2d(".repeat(n / 7),
            "'".repeat(n),
            "\"".repeat(n),
            "1".repeat(n),
            "a".repeat(n),
            "a.".repeat(n / 2),
            "nn.".repeat(n / 4) + "ReLU",
            "->".repeat(n / 2),
            "ReLU(x=".repeat(n / 7),
            "Conv2d(1, 20, 5, ".to_string() + &"stride=1, ".repeat((n - 20) / 10),
            "Softmax(".to_string() + &"1,".repeat((n - 10) / 2) + ")",
            "(0): ".repeat(n / 5),
            "ReLU\u{0}".repeat(n / 5),
            "é".repeat(n / 2),
        ];
        let start = std::time::Instant::now();
        for text in &inputs {
            assert!(text.len() <= n);
            let err = match to_layers(text) {
                Ok(_) => panic!("{:?}… should fail", &text[..20]),
                Err(e) => e,
            };
            let Error::Spec { message, excerpt } = &err else {
                panic!()
            };
            assert!(message.len() < 600, "{message}");
            assert!(excerpt.chars().count() < 200, "{excerpt}");
        }
        // Linear work: well under a second even unoptimised.
        assert!(start.elapsed().as_secs() < 5);
    }

    #[test]
    fn mutated_specs_never_panic() {
        let seeds = [
            PYTORCH_PRINT,
            SEED_NET,
            "nn.Sequential(nn.Conv2d(3, 8, (3, 5), stride=2, padding='same'), nn.Dropout(p=.5))",
        ];
        let alphabet: Vec<char> = "()[],:=-> →'\"#.0123456789eE_abcXYZ\n\t\u{7}é\u{2192}TrueNone"
            .chars()
            .collect();
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut rand = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for round in 0..3000 {
            let mut chars: Vec<char> = seeds[round % seeds.len()].chars().collect();
            for _ in 0..1 + rand(4) {
                let at = rand(chars.len() + 1);
                match rand(3) {
                    0 if at < chars.len() => {
                        chars.remove(at);
                    }
                    1 if at < chars.len() => chars[at] = alphabet[rand(alphabet.len())],
                    _ => chars.insert(at, alphabet[rand(alphabet.len())]),
                }
            }
            let text: String = chars.into_iter().collect();
            let _ = parse(&text);
            match build(&text, &[3, 28, 28], 0) {
                Ok(net) => {
                    let spec = net.spec();
                    let again = build(&spec, &[3, 28, 28], 0).expect("a built spec reads back");
                    assert_eq!(again.spec(), spec);
                }
                Err(Error::Spec { message, excerpt }) => {
                    assert!(message.starts_with("spec: line "), "{message}");
                    assert!(excerpt.contains('^'));
                }
                Err(_) => {} // a shape error from Sequential
            }
        }
    }

    #[test]
    fn suggestions_use_edit_distance() {
        assert_eq!(edit_distance("linaer", "linear"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("conv", "conv2d"), 2);
        assert_eq!(
            closest("Conv2D", LAYER_NAMES.iter().copied()),
            Some("Conv2d")
        );
        assert_eq!(
            closest("Softmx", LAYER_NAMES.iter().copied()),
            Some("Softmax")
        );
        assert_eq!(closest("Transformer", LAYER_NAMES.iter().copied()), None);
    }
}
