//! Python's spelling of values, signatures and sizes, for reprs and messages.

use std::fmt;

use super::Value;
use crate::layers::Size2;

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

/// Size2 as PyTorch prints it, for messages.
pub(crate) fn show2(s: Size2) -> String {
    if s.0 == s.1 {
        s.0.to_string()
    } else {
        format!("({}, {})", s.0, s.1)
    }
}
