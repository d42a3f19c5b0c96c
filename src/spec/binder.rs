//! The binder: a call looked up in [`crate::layers::registry`], its arguments matched to
//! the entry's PyTorch signature, and the "did you mean" suggestions for misspelt layer
//! and argument names.

use std::fmt;
use std::ops::Range;

use super::LAYER_NAMES;
use super::error::{clip, spec_error};
use super::parser::{Call, Node, NodeKind};
use crate::error::{Error, Result};
use crate::layers::registry::{self, ArgSpec, LayerEntry, NOT_IMPLEMENTED};
use crate::layers::{Layer, Size2};

/// Optimal-string-alignment distance: Levenshtein plus adjacent swaps (`Linaer`).
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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

/// A call's arguments matched to a signature, Python's way.
pub(crate) struct Bound<'a> {
    text: &'a str,
    pub(crate) call: &'a Call,
    /// The layer's name, the subject of its errors.
    pub(crate) layer: &'static str,
    sig: &'static [ArgSpec],
    slots: Vec<Option<&'a Node>>,
}

impl<'a> Bound<'a> {
    /// `lazy_in` names the keyword-only parameter a leading positional `0` fills:
    /// PyTorch prints `LazyConv2d(0, 20, kernel_size=…)` although its signature starts
    /// at out_channels.
    pub(crate) fn new(text: &'a str, call: &'a Call, entry: &'static LayerEntry) -> Result<Self> {
        let (layer, sig, lazy_in) = (entry.name, entry.args, entry.lazy_in);
        let mut b = Bound {
            text,
            call,
            layer,
            sig,
            slots: vec![None; sig.len()],
        };
        // `*args` / `**kwargs` (nn.Identity's signature) take whatever is left over.
        let var_positional = sig.iter().any(|p| p.name == "*args");
        let var_keyword = sig.iter().any(|p| p.name == "**kwargs");
        let positional: Vec<usize> = (0..sig.len())
            .filter(|&i| !sig[i].keyword_only && !sig[i].name.starts_with('*'))
            .collect();
        let given = call.args.iter().filter(|a| a.key.is_none()).count();
        let mut args = call.args.iter().peekable();
        if let (Some(name), Some(first)) = (lazy_in, args.peek())
            && first.key.is_none()
            && matches!(first.value.kind, NodeKind::Int(0))
            && given >= 2
            && let Some(slot) = sig.iter().position(|p| p.name == name)
        {
            b.slots[slot] = Some(&first.value);
            args.next();
        }
        // The placeholder 0 of a lazy print is not one of PyTorch's parameters.
        let given = args.clone().filter(|a| a.key.is_none()).count();
        let mut next = 0;
        for arg in args {
            let slot = match &arg.key {
                None => {
                    if var_positional && next >= positional.len() {
                        continue;
                    }
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
                    let found = sig
                        .iter()
                        .position(|p| p.name == key && !key.starts_with('*'));
                    if found.is_none() && var_keyword {
                        continue;
                    }
                    let Some(slot) = found else {
                        let hint = match closest(key, sig.iter().map(|p| p.name)) {
                            Some(s) => format!("; did you mean '{s}'?"),
                            None => ";".to_string(),
                        };
                        return Err(b.fail(
                            span.clone(),
                            format!(
                                "has no argument '{}'{hint} PyTorch's signature is {}",
                                clip(key),
                                entry.signature()
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
                        entry.signature()
                    ),
                ));
            }
        }
        Ok(b)
    }

    /// An error whose subject is the layer: `Conv2d takes at most …`.
    pub(crate) fn fail(&self, span: Range<usize>, message: impl fmt::Display) -> Error {
        spec_error(self.text, span, format!("{} {message}", self.layer))
    }

    /// An error about one of its arguments: `Conv2d: stride must be at least 1`.
    pub(crate) fn bad(&self, span: Range<usize>, message: impl fmt::Display) -> Error {
        spec_error(self.text, span, format!("{}: {message}", self.layer))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'a Node> {
        let slot = self.sig.iter().position(|p| p.name == name)?;
        self.slots[slot]
    }

    /// Where argument `name` is written, for a caret; the whole call when it is not.
    pub(crate) fn span_of(&self, name: &str) -> Range<usize> {
        self.get(name)
            .map_or(self.call.span.clone(), |n| n.span.clone())
    }

    pub(crate) fn src(&self, node: &Node) -> String {
        clip(&self.text[node.span.clone()])
    }

    pub(crate) fn expects(&self, name: &str, node: &Node, what: &str) -> Error {
        if let NodeKind::BadArith(why) = &node.kind {
            return self.bad(
                node.span.clone(),
                format!("{name} = {}: {why}", self.src(node)),
            );
        }
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
    pub(crate) fn required<T>(&self, v: Option<T>, name: &str) -> Result<T> {
        v.ok_or_else(|| {
            self.fail(
                self.call.span.clone(),
                format!("is missing the required argument '{name}'"),
            )
        })
    }

    pub(crate) fn count_of(&self, name: &str, node: &Node, min: usize) -> Result<usize> {
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
    pub(crate) fn size(&self, name: &str, min: usize) -> Result<Option<usize>> {
        self.get(name)
            .map(|n| self.count_of(name, n, min))
            .transpose()
    }

    /// kernel_size, stride, padding: an int or a (height, width) pair.
    pub(crate) fn size2(&self, name: &str, min: usize) -> Result<Option<Size2>> {
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

    pub(crate) fn flag(&self, name: &str) -> Result<Option<bool>> {
        match self.get(name) {
            None => Ok(None),
            Some(Node {
                kind: NodeKind::Bool(b),
                ..
            }) => Ok(Some(*b)),
            Some(node) => Err(self.expects(name, node, "True or False")),
        }
    }

    /// A float argument (an int is accepted, as Python would), finite: a non-finite
    /// value would print as `inf`, which no spec reads back. `what` describes it for the
    /// message, e.g. "a float (the fraction dropped, e.g. 0.5)".
    pub(crate) fn float(&self, name: &str, what: &str) -> Result<Option<f32>> {
        let Some(node) = self.get(name) else {
            return Ok(None);
        };
        let v = match node.kind {
            NodeKind::Float(v) => v as f32,
            NodeKind::Int(v) => v as f32,
            _ => return Err(self.expects(name, node, what)),
        };
        if !v.is_finite() {
            return Err(self.bad(
                node.span.clone(),
                format!("{name} must be a finite number, got {}", self.src(node)),
            ));
        }
        Ok(Some(v))
    }

    /// [`Bound::float`], or the default the signature gives when the argument is not
    /// written: each default is written once, where `seqnet layers` prints it.
    pub(crate) fn float_or_default(&self, name: &str, what: &str) -> Result<f32> {
        if let Some(v) = self.float(name, what)? {
            return Ok(v);
        }
        let default = self
            .sig
            .iter()
            .find(|p| p.name == name)
            .and_then(|p| p.default);
        default.and_then(|d| d.parse::<f32>().ok()).ok_or_else(|| {
            self.fail(
                self.call.span.clone(),
                format!("has no numeric default for '{name}' (seqnet's table says {default:?})"),
            )
        })
    }

    /// A string argument that must be one of `choices` (quoted or not, as the spec
    /// lexer reads both), e.g. GELU's approximate='tanh'.
    pub(crate) fn choice(
        &self,
        name: &str,
        choices: &[&'static str],
    ) -> Result<Option<&'static str>> {
        let Some(node) = self.get(name) else {
            return Ok(None);
        };
        if let NodeKind::Str(s) = &node.kind
            && let Some(&c) = choices.iter().find(|&&c| c == s)
        {
            return Ok(Some(c));
        }
        let quoted: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
        let what = match quoted.as_slice() {
            [a, b] => format!("{a} or {b}"),
            [rest @ .., last] => format!("one of {} or {last}", rest.join(", ")),
            [] => "nothing".to_string(),
        };
        Err(self.expects(name, node, &what))
    }

    pub(crate) fn int(&self, name: &str) -> Result<Option<i64>> {
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

    pub(crate) fn is_none(&self, name: &str) -> bool {
        matches!(
            self.get(name),
            Some(Node {
                kind: NodeKind::None,
                ..
            })
        )
    }

    /// Requires an optional argument to keep the one value seqnet implements.
    pub(crate) fn only<T: PartialEq + fmt::Display>(
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
    pub(crate) fn lazy_placeholder(&self, name: &str, fixed: &str) -> Result<()> {
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

// ---------------------------------------------------------------------------------------
// Layers

/// The layer a call names, bound to its registry entry's signature and constructed.
pub(super) fn make_layer(text: &str, call: &Call) -> Result<Box<dyn Layer>> {
    let Some(entry) = registry::find(&call.name) else {
        return Err(unknown_layer(text, call));
    };
    let b = Bound::new(text, call, entry)?;
    (entry.build)(&b)
}

/// The parameters a call allocates when built on `input`, found without building it
/// (see [`LayerEntry::planned_params`]); `None` also for a call that does not bind.
pub(super) fn planned_params(text: &str, call: &Call, input: &[usize]) -> Option<u128> {
    let entry = registry::find(&call.name)?;
    let b = Bound::new(text, call, entry).ok()?;
    (entry.planned_params)(&b, input)
}

pub(super) fn unknown_layer(text: &str, call: &Call) -> Error {
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
