//! Python values as the Python listener reads and writes them: the data a pickle may carry,
//! with nothing that could run code.

/// One Python value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PyValue {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond `i64`: little-endian two's complement, as pickle's `LONG1` has it.
    BigInt(Vec<u8>),
    Float(f64),
    Complex(f64, f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<PyValue>),
    List(Vec<PyValue>),
    Dict(Vec<(PyValue, PyValue)>),
    Set(Vec<PyValue>),
    FrozenSet(Vec<PyValue>),
    /// An instance of a builtin exception class, by name (`KeyError`), with its arguments.
    Exception(String, Vec<PyValue>),
    /// `multiprocessing.managers.Token(typeid, address, id)`.
    Token {
        typeid: String,
        address: Box<PyValue>,
        id: String,
    },
}

impl PyValue {
    /// About what the value takes in memory: its texts and bytes, and a word or so per node
    /// (what a proxy of it costs the store's budget).
    pub(crate) fn footprint(&self) -> u64 {
        let node = std::mem::size_of::<PyValue>() as u64;
        node + match self {
            PyValue::Str(s) => s.len() as u64,
            PyValue::Bytes(b) | PyValue::BigInt(b) => b.len() as u64,
            PyValue::Tuple(items)
            | PyValue::List(items)
            | PyValue::Set(items)
            | PyValue::FrozenSet(items)
            | PyValue::Exception(_, items) => items.iter().map(PyValue::footprint).sum(),
            PyValue::Dict(pairs) => pairs
                .iter()
                .map(|(k, v)| k.footprint() + v.footprint())
                .sum(),
            PyValue::Token {
                typeid,
                address,
                id,
            } => (typeid.len() + id.len()) as u64 + address.footprint(),
            _ => 0,
        }
    }

    /// The Python type's name, for error messages a Python user reads.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            PyValue::None => "NoneType",
            PyValue::Bool(_) => "bool",
            PyValue::Int(_) | PyValue::BigInt(_) => "int",
            PyValue::Float(_) => "float",
            PyValue::Complex(..) => "complex",
            PyValue::Str(_) => "str",
            PyValue::Bytes(_) => "bytes",
            PyValue::Tuple(_) => "tuple",
            PyValue::List(_) => "list",
            PyValue::Dict(_) => "dict",
            PyValue::Set(_) => "set",
            PyValue::FrozenSet(_) => "frozenset",
            PyValue::Exception(..) => "exception",
            PyValue::Token { .. } => "Token",
        }
    }

    /// The value as a Python `str()` would show it, roughly (for `__str__` on a proxy).
    pub(crate) fn to_str(&self) -> String {
        match self {
            PyValue::Str(s) => s.clone(),
            other => other.repr(),
        }
    }

    /// The value as Python's `repr()` shows it, for the types we hold.
    pub(crate) fn repr(&self) -> String {
        fn seq(items: &[PyValue], open: &str, close: &str) -> String {
            let inner: Vec<String> = items.iter().map(PyValue::repr).collect();
            format!("{open}{}{close}", inner.join(", "))
        }
        match self {
            PyValue::None => "None".into(),
            PyValue::Bool(true) => "True".into(),
            PyValue::Bool(false) => "False".into(),
            PyValue::Int(n) => n.to_string(),
            PyValue::BigInt(bytes) => match big_to_i128(bytes) {
                Some(n) => n.to_string(),
                None => "<int>".into(),
            },
            PyValue::Float(f) => float_repr(*f),
            PyValue::Complex(re, im) => format!("({}{:+}j)", float_repr(*re), im),
            PyValue::Str(s) => str_repr(s),
            PyValue::Bytes(b) => format!("b{:?}", String::from_utf8_lossy(b)),
            PyValue::Tuple(items) if items.len() == 1 => format!("({},)", items[0].repr()),
            PyValue::Tuple(items) => seq(items, "(", ")"),
            PyValue::List(items) => seq(items, "[", "]"),
            PyValue::Set(items) if items.is_empty() => "set()".into(),
            PyValue::Set(items) => seq(items, "{", "}"),
            PyValue::FrozenSet(items) => format!("frozenset({})", seq(items, "{", "}")),
            PyValue::Dict(pairs) => {
                let inner: Vec<String> = pairs
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.repr(), v.repr()))
                    .collect();
                format!("{{{}}}", inner.join(", "))
            }
            PyValue::Exception(name, args) => format!("{name}{}", seq(args, "(", ")")),
            PyValue::Token { typeid, id, .. } => format!("Token(typeid={typeid:?}, id={id:?})"),
        }
    }
}

/// Python's `repr` of a str: single quotes unless the text has one and no double quote.
fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn float_repr(f: f64) -> String {
    if f.is_finite() && f == f.trunc() && f.abs() < 1e16 {
        format!("{f:.1}")
    } else {
        format!("{f}")
    }
}

/// A little-endian two's complement integer as an `i128`, if it fits.
pub(crate) fn big_to_i128(bytes: &[u8]) -> Option<i128> {
    if bytes.is_empty() {
        return Some(0);
    }
    if bytes.len() > 16 {
        // Only sign-extension bytes may follow the sixteenth.
        let sign = if bytes[15] & 0x80 != 0 { 0xff } else { 0 };
        if bytes[16..].iter().any(|&b| b != sign) {
            return None;
        }
    }
    let negative = bytes[bytes.len().min(16) - 1] & 0x80 != 0;
    let mut buf = [if negative { 0xff } else { 0 }; 16];
    let n = bytes.len().min(16);
    buf[..n].copy_from_slice(&bytes[..n]);
    Some(i128::from_le_bytes(buf))
}

/// The shortest little-endian two's complement bytes of `n` (pickle's `LONG1` payload).
pub(crate) fn i128_to_big(n: i128) -> Vec<u8> {
    let bytes = n.to_le_bytes();
    let mut len = 16;
    while len > 1 {
        let top = bytes[len - 1];
        let next_sign = bytes[len - 2] & 0x80;
        if (top == 0 && next_sign == 0) || (top == 0xff && next_sign != 0) {
            len -= 1;
        } else {
            break;
        }
    }
    bytes[..len].to_vec()
}
