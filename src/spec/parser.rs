//! The parser: tokens to layer calls, with spans kept for the binder's errors.

use std::fmt;
use std::ops::Range;

use super::error::{clip, floor_boundary, line_col, spec_error};
use super::lexer::{Tk, Tok, lex};
use super::{MAX_LAYERS, MAX_SPEC_BYTES, Value};
use crate::error::{Error, Result};

/// Deepest nesting of tuples: the parser recurses on them, so an input of a thousand
/// `(` must not be able to exhaust the stack.
pub(super) const MAX_NESTING: usize = 32;

/// The example shown when a spec names no layers.
pub(super) const EXAMPLE: &str = "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> \
                       LazyLinear(100) -> ReLU() -> Linear(100, 10)";

/// Why `nn.Sequential(OrderedDict(...))` cannot be read.
pub(super) const NAMED_CHILDREN: &str = "nn.Sequential(OrderedDict(...)) names its children, but only \
    index-numbered children map to seqnet's state_dict names ('0.weight', …); pass the \
    layers to nn.Sequential(...) directly";

/// A value with the byte range it was written at, for carets.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) kind: NodeKind,
    pub(crate) span: Range<usize>,
}

#[derive(Clone, Debug)]
pub(crate) enum NodeKind {
    Int(i64),
    /// An int that does not fit in an i64.
    BigInt,
    Float(f64),
    Bool(bool),
    None,
    Str(String),
    Tuple(Vec<Node>),
    /// Arithmetic that gives no int, e.g. `16*0.5` or `4//0`: why, to follow
    /// "in_features = 16*0.5: ". The binder reports it, naming the layer and the
    /// argument.
    BadArith(String),
}

/// The operators of spec arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    Add,
    Sub,
    Mul,
    /// `//`: Python's floor division, rounding toward minus infinity.
    FloorDiv,
    /// `/`: Python's true division, whose result is a float; read only to say so.
    TrueDiv,
}

/// `lhs op rhs` over i64 as Python computes it. The result spans both operands; an
/// overflow is a [`NodeKind::BigInt`] (reported as not fitting in 64 bits) and anything
/// but two ints a [`NodeKind::BadArith`], so that the binder's error can name the layer
/// and argument.
pub(super) fn arith(text: &str, op: Op, lhs: Node, rhs: Node) -> Node {
    let span = lhs.span.start..rhs.span.end;
    let not_number = |n: &Node| {
        !matches!(
            n.kind,
            NodeKind::Int(_) | NodeKind::BigInt | NodeKind::Float(_)
        )
    };
    let kind = match (&lhs.kind, &rhs.kind) {
        (NodeKind::BadArith(why), _) | (_, NodeKind::BadArith(why)) => {
            NodeKind::BadArith(why.clone())
        }
        _ if op == Op::TrueDiv => NodeKind::BadArith(
            "'/' is true division, which gives a float; write '//' for integer division, \
             e.g. 3//2"
                .to_string(),
        ),
        _ if not_number(&lhs) || not_number(&rhs) => {
            let other = if not_number(&lhs) { &lhs } else { &rhs };
            NodeKind::BadArith(format!(
                "{} is not a number",
                clip(&text[other.span.clone()])
            ))
        }
        (NodeKind::Float(_), _) | (_, NodeKind::Float(_)) => NodeKind::BadArith(
            "spec arithmetic (+, -, *, //) is on ints only; write the float itself".to_string(),
        ),
        (NodeKind::Int(a), NodeKind::Int(b)) => {
            let (a, b) = (*a, *b);
            match op {
                Op::Add => a.checked_add(b).map_or(NodeKind::BigInt, NodeKind::Int),
                Op::Sub => a.checked_sub(b).map_or(NodeKind::BigInt, NodeKind::Int),
                Op::Mul => a.checked_mul(b).map_or(NodeKind::BigInt, NodeKind::Int),
                Op::FloorDiv if b == 0 => NodeKind::BadArith("division by zero".to_string()),
                Op::FloorDiv => floor_div(a, b).map_or(NodeKind::BigInt, NodeKind::Int),
                Op::TrueDiv => NodeKind::BadArith("'/' gives a float".to_string()),
            }
        }
        // A 64-bit overflow on either side.
        _ => NodeKind::BigInt,
    };
    Node { kind, span }
}

/// Python's `a // b` for `b != 0`: the quotient rounded toward minus infinity (`-7 // 2`
/// is -4). `None` when it overflows (`i64::MIN // -1`).
pub(super) fn floor_div(a: i64, b: i64) -> Option<i64> {
    let q = a.checked_div(b)?;
    if a % b != 0 && (a < 0) != (b < 0) {
        q.checked_sub(1)
    } else {
        Some(q)
    }
}

#[derive(Clone, Debug)]
pub(super) struct Arg {
    /// The keyword and its span, for keyword arguments.
    pub(super) key: Option<(String, Range<usize>)>,
    pub(super) value: Node,
}

impl Arg {
    pub(super) fn span(&self) -> Range<usize> {
        match &self.key {
            Some((_, k)) => k.start..self.value.span.end,
            None => self.value.span.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Call {
    /// Without the `nn.` / `torch.nn.` prefix.
    pub(super) name: String,
    pub(super) name_span: Range<usize>,
    pub(super) args: Vec<Arg>,
    pub(crate) span: Range<usize>,
}

/// An open bracket, for "expected ')' to close 'Conv2d(' opened at column 1".
pub(super) struct Open {
    pub(super) what: String,
    pub(super) close: char,
    pub(super) at: usize,
}

/// `nn.Conv2d` and `torch.nn.Conv2d` are Conv2d, so pasted Python code works.
pub(super) fn strip_prefix(name: &str) -> &str {
    for prefix in ["torch.nn.", "nn."] {
        if let Some(rest) = name.strip_prefix(prefix)
            && !rest.is_empty()
        {
            return rest;
        }
    }
    name
}

pub(super) fn starts_value(kind: &Tk) -> bool {
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
pub(super) fn parse_calls(text: &str) -> Result<Vec<Call>> {
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

pub(super) struct Parser<'t> {
    pub(super) text: &'t str,
    /// Never empty: ends with `Tk::Eof`.
    pub(super) toks: Vec<Tok>,
    pub(super) pos: usize,
    pub(super) calls: Vec<Call>,
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

    /// An argument value, or Python's integer arithmetic over values: `+`, `-`, `*`
    /// and `//` with the usual precedence, evaluated as it is read (see [`arith`]).
    fn value(&mut self, open: &Open, depth: usize) -> Result<Node> {
        let mut sum = self.product(open, depth)?;
        loop {
            let op = match self.peek_at(0).kind {
                Tk::Plus => Op::Add,
                Tk::Minus => Op::Sub,
                _ => return Ok(sum),
            };
            self.operator()?;
            let rhs = self.product(open, depth)?;
            sum = arith(self.text, op, sum, rhs);
        }
    }

    /// Terms joined by `*`, `//` or `/`.
    fn product(&mut self, open: &Open, depth: usize) -> Result<Node> {
        let mut product = self.signed(open, depth)?;
        loop {
            let op = match self.peek_at(0).kind {
                Tk::Star => Op::Mul,
                Tk::SlashSlash => Op::FloorDiv,
                Tk::Slash => Op::TrueDiv,
                _ => return Ok(product),
            };
            self.operator()?;
            let rhs = self.signed(open, depth)?;
            product = arith(self.text, op, product, rhs);
        }
    }

    /// Steps over a binary operator, which must be followed by a value.
    fn operator(&mut self) -> Result<()> {
        let op = self.peek();
        self.bump();
        let next = self.peek();
        if starts_value(&next.kind) {
            return Ok(());
        }
        Err(self.err(
            next.span.clone(),
            format!(
                "expected a value after '{}', found {}",
                &self.text[op.span.clone()],
                self.describe(&next)
            ),
        ))
    }

    /// A value, or `-` before a number or a parenthesised expression.
    fn signed(&mut self, open: &Open, depth: usize) -> Result<Node> {
        let minus = self.peek();
        if minus.kind != Tk::Minus {
            return self.atom(open, depth);
        }
        self.bump();
        let next = self.peek();
        if !matches!(next.kind, Tk::Int(_) | Tk::Float(_) | Tk::LParen) {
            return Err(self.err(
                minus.span,
                format!(
                    "expected a number after '-', found {}",
                    self.describe(&next)
                ),
            ));
        }
        let node = self.atom(open, depth)?;
        let kind = match node.kind {
            NodeKind::Int(v) => v.checked_neg().map_or(NodeKind::BigInt, NodeKind::Int),
            NodeKind::Float(f) => NodeKind::Float(-f),
            kind @ (NodeKind::BigInt | NodeKind::BadArith(_)) => kind,
            _ => NodeKind::BadArith(format!(
                "{} is not a number",
                clip(&self.text[node.span.clone()])
            )),
        };
        Ok(Node {
            kind,
            span: minus.span.start..node.span.end,
        })
    }

    /// A literal, a word, or a bracketed tuple (a parenthesised expression).
    fn atom(&mut self, open: &Open, depth: usize) -> Result<Node> {
        let tok = self.peek();
        let kind = match &tok.kind {
            Tk::Int(Some(v)) => NodeKind::Int(*v),
            Tk::Int(None) => NodeKind::BigInt,
            Tk::Float(f) => NodeKind::Float(*f),
            Tk::Str(s) => NodeKind::Str(s.clone()),
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
        if paren
            && !comma
            && items.len() == 1
            && let Some(mut only) = items.pop()
        {
            only.span = span;
            return Ok(only);
        }
        Ok(Node {
            kind: NodeKind::Tuple(items),
            span,
        })
    }
}

/// The value of a parsed argument; `subject` names it in errors, e.g. `Linear argument
/// 1` or `Linear: bias`.
pub(super) fn public_value(text: &str, node: Node, subject: &str) -> Result<Value> {
    Ok(match node.kind {
        NodeKind::Int(v) => Value::Int(v),
        NodeKind::BigInt => {
            return Err(spec_error(
                text,
                node.span.clone(),
                format!(
                    "{subject} = {} does not fit in 64 bits",
                    clip(&text[node.span])
                ),
            ));
        }
        NodeKind::BadArith(why) => {
            return Err(spec_error(
                text,
                node.span.clone(),
                format!("{subject} = {}: {why}", clip(&text[node.span])),
            ));
        }
        NodeKind::Float(v) => Value::Float(v),
        NodeKind::Bool(b) => Value::Bool(b),
        NodeKind::None => Value::None,
        NodeKind::Str(s) => Value::Str(s),
        NodeKind::Tuple(items) => Value::Tuple(
            items
                .into_iter()
                .map(|n| public_value(text, n, subject))
                .collect::<Result<_>>()?,
        ),
    })
}
