//! A pickle reader for protocols 0 to 5 that never imports or calls anything.
//!
//! Pickle is a little stack machine whose `GLOBAL`, `REDUCE`, `NEWOBJ` and `BUILD` opcodes
//! would, in Python, import a name and call it. Here a global is only a name, accepted from an
//! allow-list of shapes that become data (`builtins.complex(re, im)`, the builtin exception
//! classes, `multiprocessing.managers.Token`, `set`, `frozenset`, `bytearray`, and protocol 2's
//! `_codecs.encode` for bytes); any other global is refused before anything is built.
//!
//! Values are nodes in an arena, referred to by index, so the memo shares them as Python does
//! (a list memoized while empty and filled afterwards is the same list when fetched again), and
//! no Rust recursion happens while reading: 100,000 nested lists read in a loop. Turning the
//! arena into a [`ForeignValue`] recurses with a depth limit, which also ends reference cycles.
//! Every length is checked against the bytes that remain before anything is allocated.

use crate::values::value::ForeignValue;

/// Why a pickle was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PickleError(pub(crate) String);

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(message: impl Into<String>) -> Result<T, PickleError> {
    Err(PickleError(message.into()))
}

/// A global the reader accepts, and what it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Global {
    Complex,
    Set,
    FrozenSet,
    ByteArray,
    /// `_codecs.encode(text, 'latin1')`: how protocols 0 to 2 spell `bytes`.
    Encode,
    Token,
    /// A builtin exception class (its name is kept in the node).
    Exception,
}

/// The builtin exception classes a reply or request may carry.
pub(crate) const EXCEPTIONS: &[&str] = &[
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BaseException",
    "BufferError",
    "EOFError",
    "Exception",
    "FileExistsError",
    "FileNotFoundError",
    "FloatingPointError",
    "IndexError",
    "KeyError",
    "LookupError",
    "MemoryError",
    "NameError",
    "NotImplementedError",
    "OSError",
    "OverflowError",
    "PermissionError",
    "RecursionError",
    "ReferenceError",
    "RuntimeError",
    "StopIteration",
    "TimeoutError",
    "TypeError",
    "UnicodeError",
    "ValueError",
    "ZeroDivisionError",
];

fn allowed_global(module: &str, name: &str) -> Option<Global> {
    match (module, name) {
        ("builtins" | "__builtin__", "complex") => Some(Global::Complex),
        ("builtins" | "__builtin__", "set") => Some(Global::Set),
        ("builtins" | "__builtin__", "frozenset") => Some(Global::FrozenSet),
        ("builtins" | "__builtin__", "bytearray") => Some(Global::ByteArray),
        ("builtins" | "__builtin__" | "exceptions", n) if EXCEPTIONS.contains(&n) => {
            Some(Global::Exception)
        }
        ("_codecs", "encode") => Some(Global::Encode),
        ("multiprocessing.managers", "Token") => Some(Global::Token),
        _ => None,
    }
}

/// One value in the arena.
#[derive(Debug, Clone)]
enum Node {
    Leaf(ForeignValue),
    Tuple(Vec<usize>),
    List(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    FrozenSet(Vec<usize>),
    Global(Global, String),
    /// An allowed class applied to its arguments, to be interpreted on conversion.
    Applied(Global, String, usize),
    /// A Token made with `NEWOBJ`, its state set by `BUILD`.
    Token(Option<usize>),
}

struct Reader<'a> {
    input: &'a [u8],
    at: usize,
    nodes: Vec<Node>,
    stack: Vec<usize>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, usize>,
    /// Bytes the pickle may still make us hold (nodes read, values made, memo copies).
    budget: std::cell::Cell<u64>,
}

/// What one byte of pickle may cost once read: a node and its value are a few dozen bytes,
/// and a pickle of small ints spends two bytes on each.
const COST_PER_BYTE: u64 = 128;

/// What any pickle may cost, however large its frame (a list of about two million small
/// values).
const MAX_COST: u64 = 256 << 20;

/// The budget of a pickle of `len` bytes: proportional to it, at least 1 MiB, at most
/// [`MAX_COST`]. Without it a few hundred bytes of shared memo references expand
/// exponentially when converted (each reference is a copy), and a frame of `]` holds 60
/// times its size in nodes.
fn budget_of(len: usize) -> u64 {
    (len as u64)
        .saturating_mul(COST_PER_BYTE)
        .clamp(1 << 20, MAX_COST)
}

/// Reads one pickle that fills `input` exactly; values nested deeper than `max_depth` are
/// refused.
pub(crate) fn unpickle(input: &[u8], max_depth: u32) -> Result<ForeignValue, PickleError> {
    let mut reader = Reader {
        input,
        at: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: std::collections::HashMap::new(),
        budget: std::cell::Cell::new(budget_of(input.len())),
    };
    let top = reader.run()?;
    if reader.at != input.len() {
        return err(format!(
            "{} bytes follow the pickle's STOP",
            input.len() - reader.at
        ));
    }
    reader.convert(top, max_depth)
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        if self.input.len() - self.at < n {
            return err(format!(
                "the pickle is truncated: {n} bytes announced at offset {}, {} left",
                self.at,
                self.input.len() - self.at
            ));
        }
        let bytes = &self.input[self.at..self.at + n];
        self.at += n;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }

    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }

    /// A length read from the input, checked against what remains.
    fn len(&mut self, n: u64) -> Result<usize, PickleError> {
        let left = (self.input.len() - self.at) as u64;
        if n > left {
            return err(format!(
                "the pickle announces {n} bytes at offset {} but has only {left}",
                self.at
            ));
        }
        Ok(n as usize)
    }

    /// A text line (protocol 0), without its newline.
    fn line(&mut self) -> Result<&str, PickleError> {
        let rest = &self.input[self.at..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return err("the pickle is truncated inside a text line");
        };
        self.at += end + 1;
        std::str::from_utf8(&rest[..end]).or_else(|_| err("a text line is not UTF-8"))
    }

    fn push(&mut self, node: Node) -> Result<(), PickleError> {
        self.spend(std::mem::size_of::<Node>() as u64 + 8)?;
        self.nodes.push(node);
        self.stack.push(self.nodes.len() - 1);
        Ok(())
    }

    fn push_leaf(&mut self, value: ForeignValue) -> Result<(), PickleError> {
        self.push(Node::Leaf(value))
    }

    /// Charges `bytes` to the pickle's budget, refusing it once spent.
    fn spend(&self, bytes: u64) -> Result<(), PickleError> {
        let left = self.budget.get();
        if bytes > left {
            return err(format!(
                "the pickle expands past its budget ({} bytes for a pickle of {}): shared \
                 references or a flood of items",
                budget_of(self.input.len()),
                self.input.len()
            ));
        }
        self.budget.set(left - bytes);
        Ok(())
    }

    fn pop(&mut self) -> Result<usize, PickleError> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return err("the pickle pops past a MARK");
        }
        self.stack
            .pop()
            .ok_or_else(|| PickleError("the pickle pops an empty stack".into()))
    }

    fn top(&self) -> Result<usize, PickleError> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| PickleError("the pickle works on an empty stack".into()))
    }

    /// The items above the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<usize>, PickleError> {
        let Some(mark) = self.marks.pop() else {
            return err("the pickle has no MARK to pop to");
        };
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&self, key: u64) -> Result<usize, PickleError> {
        self.memo.get(&key).copied().ok_or_else(|| {
            PickleError(format!("the pickle fetches memo entry {key}, never stored"))
        })
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn str_leaf(bytes: &[u8]) -> Result<ForeignValue, PickleError> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(ForeignValue::Str(s.to_string())),
            Err(_) => err("a pickled str is not valid UTF-8"),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        match allowed_global(module, name) {
            Some(global) => {
                self.push(Node::Global(global, name.to_string()))?;
                Ok(())
            }
            None => err(format!(
                "refused to load the global {module}.{name}: this manager loads no code from \
                 pickles (only builtin data types, exceptions and Token)"
            )),
        }
    }

    fn append(&mut self, list: usize, items: Vec<usize>) -> Result<(), PickleError> {
        match &mut self.nodes[list] {
            Node::List(existing) => {
                existing.extend(items);
                Ok(())
            }
            _ => err("the pickle appends to something that is not a list"),
        }
    }

    fn set_items(&mut self, dict: usize, items: Vec<usize>) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return err("the pickle sets a dict item without its value");
        }
        match &mut self.nodes[dict] {
            Node::Dict(existing) => {
                existing.extend(items.chunks(2).map(|kv| (kv[0], kv[1])));
                Ok(())
            }
            _ => err("the pickle sets items on something that is not a dict"),
        }
    }

    fn int_line(text: &str) -> Result<ForeignValue, PickleError> {
        let text = text.trim_end_matches('L');
        match text {
            "01" => return Ok(ForeignValue::Bool(true)),
            "00" => return Ok(ForeignValue::Bool(false)),
            _ => {}
        }
        match text.parse::<i64>() {
            Ok(n) => Ok(ForeignValue::Int(n)),
            Err(_) => match text.parse::<i128>() {
                Ok(n) => Ok(ForeignValue::BigInt(crate::values::value::i128_to_big(n))),
                Err(_) => err(format!("{text:?} is not an integer this manager reads")),
            },
        }
    }

    fn long_bytes(bytes: &[u8]) -> ForeignValue {
        match crate::values::value::big_to_i128(bytes) {
            Some(n) if i64::try_from(n).is_ok() => ForeignValue::Int(n as i64),
            _ => ForeignValue::BigInt(bytes.to_vec()),
        }
    }

    /// Runs the machine to STOP; returns the top of the stack.
    fn run(&mut self) -> Result<usize, PickleError> {
        loop {
            let op = self.byte()?;
            match op {
                0x80 => {
                    let protocol = self.byte()?;
                    if protocol > 5 {
                        return err(format!("pickle protocol {protocol} is newer than 5"));
                    }
                }
                0x95 => {
                    // FRAME: a hint for buffered readers; the whole pickle is here already.
                    let n = self.u64()?;
                    self.len(n)?;
                }
                b'.' => {
                    let top = self.pop()?;
                    if !self.stack.is_empty() || !self.marks.is_empty() {
                        return err("the pickle stops with more than one value on its stack");
                    }
                    return Ok(top);
                }
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?;
                    self.stack.push(top);
                }
                b'N' => self.push_leaf(ForeignValue::None)?,
                0x88 => self.push_leaf(ForeignValue::Bool(true))?,
                0x89 => self.push_leaf(ForeignValue::Bool(false))?,
                b'J' => {
                    let n = i32::from_le_bytes(self.take(4)?.try_into().expect("4"));
                    self.push_leaf(ForeignValue::Int(n.into()))?;
                }
                b'K' => {
                    let n = self.byte()?;
                    self.push_leaf(ForeignValue::Int(n.into()))?;
                }
                b'M' => {
                    let n = self.u16()?;
                    self.push_leaf(ForeignValue::Int(n.into()))?;
                }
                b'I' | b'L' => {
                    let value = Self::int_line(self.line()?)?;
                    self.push_leaf(value)?;
                }
                0x8a => {
                    let n = self.byte()? as u64;
                    let n = self.len(n)?;
                    let value = Self::long_bytes(self.take(n)?);
                    self.push_leaf(value)?;
                }
                0x8b => {
                    let n = self.u32()? as u64;
                    let n = self.len(n)?;
                    let value = Self::long_bytes(self.take(n)?);
                    self.push_leaf(value)?;
                }
                b'F' => {
                    let text = self.line()?;
                    let value = text
                        .trim()
                        .parse::<f64>()
                        .or_else(|_| err(format!("{text:?} is not a float")))?;
                    self.push_leaf(ForeignValue::Float(value))?;
                }
                b'G' => {
                    let value = f64::from_be_bytes(self.take(8)?.try_into().expect("8"));
                    self.push_leaf(ForeignValue::Float(value))?;
                }
                b'S' => {
                    let text = self.line()?.to_string();
                    let value = unquote(&text)?;
                    self.push_leaf(ForeignValue::Str(value))?;
                }
                b'V' => {
                    let text = self.line()?;
                    let value = raw_unicode_escape(text)?;
                    self.push_leaf(ForeignValue::Str(value))?;
                }
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        self.u32()? as u64
                    } else {
                        self.byte()? as u64
                    };
                    let n = self.len(n)?;
                    // Python 3 reads protocol 2's byte strings as str, in ASCII by default.
                    let value = Self::str_leaf(self.take(n)?)?;
                    self.push_leaf(value)?;
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.u32()? as u64,
                        0x8c => self.byte()? as u64,
                        _ => self.u64()?,
                    };
                    let n = self.len(n)?;
                    let value = Self::str_leaf(self.take(n)?)?;
                    self.push_leaf(value)?;
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.u32()? as u64,
                        b'C' => self.byte()? as u64,
                        _ => self.u64()?,
                    };
                    let n = self.len(n)?;
                    let value = ForeignValue::Bytes(self.take(n)?.to_vec());
                    self.push_leaf(value)?;
                }
                b')' => self.push(Node::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n
                        || self.marks.last().is_some_and(|&m| m > self.stack.len() - n)
                    {
                        return err("the pickle builds a tuple from too few items");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Node::Tuple(items))?;
                }
                b']' => self.push(Node::List(Vec::new()))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items))?;
                }
                b'a' => {
                    let item = self.pop()?;
                    let list = self.top()?;
                    self.append(list, vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.append(list, items)?;
                }
                b'}' => self.push(Node::Dict(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Dict(Vec::new()))?;
                    let dict = self.top()?;
                    self.set_items(dict, items)?;
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?;
                    self.set_items(dict, vec![key, value])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?;
                    self.set_items(dict, items)?;
                }
                0x8f => self.push(Node::Set(Vec::new()))?,
                0x90 => {
                    let items = self.pop_mark()?;
                    let set = self.top()?;
                    match &mut self.nodes[set] {
                        Node::Set(existing) => existing.extend(items),
                        _ => return err("the pickle adds items to something that is not a set"),
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Node::FrozenSet(items))?;
                }
                b'g' => {
                    let key = self.line()?.trim().to_string();
                    let key = key
                        .parse()
                        .or_else(|_| err(format!("{key:?} is not a memo key")))?;
                    let node = self.memo_get(key)?;
                    self.stack.push(node);
                }
                b'h' => {
                    let key = self.byte()? as u64;
                    let node = self.memo_get(key)?;
                    self.stack.push(node);
                }
                b'j' => {
                    let key = self.u32()? as u64;
                    let node = self.memo_get(key)?;
                    self.stack.push(node);
                }
                b'p' => {
                    let key = self.line()?.trim().to_string();
                    let key = key
                        .parse()
                        .or_else(|_| err(format!("{key:?} is not a memo key")))?;
                    self.memo_put(key)?;
                }
                b'q' => {
                    let key = self.byte()? as u64;
                    self.memo_put(key)?;
                }
                b'r' => {
                    let key = self.u32()? as u64;
                    self.memo_put(key)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?;
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.global(&module, &name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let text = |node: usize| match &self.nodes[node] {
                        Node::Leaf(ForeignValue::Str(s)) => Ok(s.clone()),
                        _ => err("STACK_GLOBAL needs two strings"),
                    };
                    let (module, name) = (text(module)?, text(name)?);
                    self.global(&module, &name)?;
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    match self.nodes[callable].clone() {
                        Node::Global(Global::Token, _) => {
                            return err("Token is rebuilt with NEWOBJ, not REDUCE");
                        }
                        Node::Global(global, name) => {
                            self.push(Node::Applied(global, name, args))?
                        }
                        _ => return err("the pickle calls something that is not a global"),
                    }
                }
                0x81 => {
                    let _args = self.pop()?;
                    let class = self.pop()?;
                    match &self.nodes[class] {
                        Node::Global(Global::Token, _) => self.push(Node::Token(None))?,
                        _ => return err("the pickle makes an object of a class it may not"),
                    }
                }
                b'b' => {
                    let state = self.pop()?;
                    let object = self.top()?;
                    match &mut self.nodes[object] {
                        Node::Token(slot @ None) => *slot = Some(state),
                        // An exception's attributes (its __dict__): not needed.
                        Node::Applied(Global::Exception, ..) => {}
                        _ => return err("the pickle sets the state of something it may not"),
                    }
                }
                other => {
                    let name = match other {
                        b'P' | b'Q' => "persistent ids",
                        b'i' | b'o' | 0x92 => "old-style object construction",
                        0x82..=0x84 => "extension codes",
                        0x97 | 0x98 => "out-of-band buffers",
                        _ => "",
                    };
                    return if name.is_empty() {
                        err(format!(
                            "byte 0x{other:02x} at offset {} is not a pickle opcode",
                            self.at - 1
                        ))
                    } else {
                        err(format!(
                            "the pickle uses {name}, which this manager does not read"
                        ))
                    };
                }
            }
        }
    }

    /// Turns node `at` into a value, at most `depth` levels deep.
    fn convert(&self, at: usize, depth: u32) -> Result<ForeignValue, PickleError> {
        let Some(depth) = depth.checked_sub(1) else {
            return err("the pickled value is nested too deeply (or refers to itself)");
        };
        let all = |items: &[usize]| -> Result<Vec<ForeignValue>, PickleError> {
            items.iter().map(|&i| self.convert(i, depth)).collect()
        };
        // Every value made is charged: a node the memo shares is made once per reference.
        let own_bytes = match &self.nodes[at] {
            Node::Leaf(ForeignValue::Str(s)) => s.len(),
            Node::Leaf(ForeignValue::Bytes(b) | ForeignValue::BigInt(b)) => b.len(),
            _ => 0,
        };
        self.spend(std::mem::size_of::<ForeignValue>() as u64 + own_bytes as u64)?;
        Ok(match &self.nodes[at] {
            Node::Leaf(value) => value.clone(),
            Node::Tuple(items) => ForeignValue::Tuple(all(items)?),
            Node::List(items) => ForeignValue::List(all(items)?),
            Node::Set(items) => ForeignValue::Set(all(items)?),
            Node::FrozenSet(items) => ForeignValue::FrozenSet(all(items)?),
            Node::Dict(pairs) => ForeignValue::Dict(
                pairs
                    .iter()
                    .map(|&(k, v)| Ok((self.convert(k, depth)?, self.convert(v, depth)?)))
                    .collect::<Result<_, PickleError>>()?,
            ),
            Node::Global(_, name) => {
                return err(format!(
                    "the pickle holds the class {name} itself, not a value"
                ));
            }
            Node::Token(state) => {
                let state = match state {
                    Some(state) => self.convert(*state, depth)?,
                    None => return err("a Token without its state"),
                };
                match state {
                    ForeignValue::Tuple(fields) if fields.len() == 3 => {
                        let mut fields = fields.into_iter();
                        let (typeid, address, id) = (
                            fields.next().expect("3"),
                            fields.next().expect("3"),
                            fields.next().expect("3"),
                        );
                        match (typeid, id) {
                            (ForeignValue::Str(typeid), ForeignValue::Str(id)) => {
                                ForeignValue::Token {
                                    typeid,
                                    address: Box::new(address),
                                    id,
                                }
                            }
                            _ => return err("a Token's typeid and id must be str"),
                        }
                    }
                    _ => return err("a Token's state must be (typeid, address, id)"),
                }
            }
            Node::Applied(global, name, args) => {
                let args = match self.convert(*args, depth)? {
                    ForeignValue::Tuple(args) => args,
                    _ => {
                        return err(format!(
                            "{name} is called with arguments that are not a tuple"
                        ));
                    }
                };
                apply(*global, name, args)?
            }
        })
    }
}

/// What an allowed class applied to `args` stands for.
fn apply(global: Global, name: &str, args: Vec<ForeignValue>) -> Result<ForeignValue, PickleError> {
    let number = |v: &ForeignValue| match v {
        ForeignValue::Int(n) => Some(*n as f64),
        ForeignValue::Float(f) => Some(*f),
        _ => None,
    };
    match (global, args.as_slice()) {
        (Global::Complex, [re, im]) => match (number(re), number(im)) {
            (Some(re), Some(im)) => Ok(ForeignValue::Complex(re, im)),
            _ => err("complex() needs two numbers"),
        },
        (Global::Complex, [re]) => match number(re) {
            Some(re) => Ok(ForeignValue::Complex(re, 0.0)),
            None => err("complex() needs a number"),
        },
        (Global::Set | Global::FrozenSet, []) => Ok(if global == Global::Set {
            ForeignValue::Set(Vec::new())
        } else {
            ForeignValue::FrozenSet(Vec::new())
        }),
        (
            Global::Set | Global::FrozenSet,
            [ForeignValue::List(items) | ForeignValue::Tuple(items)],
        ) => Ok(if global == Global::Set {
            ForeignValue::Set(items.clone())
        } else {
            ForeignValue::FrozenSet(items.clone())
        }),
        (Global::ByteArray, []) => Ok(ForeignValue::Bytes(Vec::new())),
        (Global::ByteArray, [ForeignValue::Bytes(b)]) => Ok(ForeignValue::Bytes(b.clone())),
        (Global::Encode, [ForeignValue::Str(text), ForeignValue::Str(encoding)])
            if encoding == "latin1" || encoding == "latin-1" =>
        {
            // Each char is one byte below 256.
            text.chars()
                .map(|c| u8::try_from(c as u32).or_else(|_| err("latin1 text above U+00FF")))
                .collect::<Result<Vec<u8>, _>>()
                .map(ForeignValue::Bytes)
        }
        (Global::Exception, _) => Ok(ForeignValue::Exception(name.to_string(), args)),
        _ => err(format!(
            "{name} is called with arguments it does not take here"
        )),
    }
}

/// A protocol-0 `STRING` argument: a Python bytes literal in quotes.
fn unquote(text: &str) -> Result<String, PickleError> {
    let inner = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .or_else(|| text.strip_prefix('"').and_then(|t| t.strip_suffix('"')))
        .ok_or_else(|| PickleError("a STRING argument is not quoted".into()))?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let byte = u8::from_str_radix(&hex, 16)
                    .or_else(|_| err("a bad \\x escape in a STRING"))?;
                out.push(byte as char);
            }
            _ => return err("an escape a STRING argument may not have"),
        }
    }
    Ok(out)
}

/// A protocol-0 `UNICODE` argument: raw-unicode-escape (`\uXXXX`, `\UXXXXXXXX`).
fn raw_unicode_escape(text: &str) -> Result<String, PickleError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && matches!(chars.peek(), Some('u' | 'U')) {
            let width = if chars.next() == Some('u') { 4 } else { 8 };
            let hex: String = chars.by_ref().take(width).collect();
            let code = u32::from_str_radix(&hex, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| PickleError("a bad \\u escape in a UNICODE argument".into()))?;
            out.push(code);
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// `x = []; for _ in range(30): x = [x, x]` as Python pickles it (216 bytes): each level
    /// refers to the one below twice through the memo, so it stands for 2^30 lists. The audit's
    /// 431-byte form of it aborted the manager; it is refused within its budget.
    pub(crate) fn shared_references(levels: u8) -> Vec<u8> {
        let mut out = vec![0x80, 2];
        for i in 0..levels {
            out.extend_from_slice(&[b']', b'q', i, b'(']);
        }
        out.extend_from_slice(&[b']', b'q', levels]);
        for i in (0..levels).rev() {
            out.extend_from_slice(&[b'h', i + 1, b'e']);
        }
        out.push(b'.');
        out
    }

    #[test]
    fn shared_memo_references_are_refused_past_the_budget() {
        let bytes = shared_references(30);
        assert_eq!(bytes.len(), 216);
        let why = unpickle(&bytes, 128).unwrap_err().to_string();
        assert!(why.contains("budget"), "{why}");
        // The same shape, shallow enough to be a real value, still reads.
        assert!(unpickle(&shared_references(4), 128).is_ok());
    }

    #[test]
    fn a_flood_of_empty_lists_is_refused_past_the_budget() {
        let mut bytes = vec![0x80, 2];
        bytes.resize(8 << 20, b']');
        bytes.push(b'.');
        let why = unpickle(&bytes, 128).unwrap_err().to_string();
        assert!(why.contains("budget"), "{why}");
    }

    /// The exact requests a 3.11 client sends for the tutorial's example, as captured from it.
    #[test]
    fn the_golden_requests_decode() {
        let str_ = |s: &str| ForeignValue::Str(s.into());
        let request = |ident: ForeignValue, method: &str, args: Vec<ForeignValue>| {
            ForeignValue::Tuple(vec![
                ident,
                str_(method),
                ForeignValue::Tuple(args),
                ForeignValue::Dict(vec![]),
            ])
        };
        let cases = [
            (
                "8004951000000000000000284e8c0564756d6d7994297d9474942e",
                request(ForeignValue::None, "dummy", vec![]),
            ),
            (
                "8004951c00000000000000284e8c06637265617465948c03676574948c01619486947d9474942e",
                request(ForeignValue::None, "create", vec![str_("get"), str_("a")]),
            ),
            (
                "8004952100000000000000284e8c06696e63726566948c0c3766663539343933623831309485947d9474942e",
                request(ForeignValue::None, "incref", vec![str_("7ff59493b810")]),
            ),
            (
                "8004952b00000000000000284e8c116163636570745f636f6e6e656374696f6e948c0b4d61696e50726f636573739485947d9474942e",
                request(
                    ForeignValue::None,
                    "accept_connection",
                    vec![str_("MainProcess")],
                ),
            ),
            (
                "8004952200000000000000288c0c376666353934393362383130948c09636f6e6a756761746594297d9474942e",
                request(str_("7ff59493b810"), "conjugate", vec![]),
            ),
        ];
        for (bytes, expected) in cases {
            assert_eq!(unpickle(&hex(bytes), 128).unwrap(), expected, "{bytes}");
        }
        // And the server's replies, for our own writer's round trips.
        let complex = hex(
            "8004953a000000000000008c072352455455524e948c086275696c74696e73948c07636f6d706c657894939447400000000000000047c0080000000000008694529486942e",
        );
        assert_eq!(
            unpickle(&complex, 128).unwrap(),
            ForeignValue::Tuple(vec![str_("#RETURN"), ForeignValue::Complex(2.0, -3.0)])
        );
        let token = hex(
            "800258060000002350524f585958080000005f5f6e6578745f5f85636d756c746970726f63657373696e672e6d616e61676572730a546f6b656e0a298158080000004974657261746f7258090000003132372e302e302e314df7108658040000006f626a31876286862e",
        );
        let ForeignValue::Tuple(reply) = unpickle(&token, 128).unwrap() else {
            panic!()
        };
        assert!(
            matches!(&reply[1], ForeignValue::Tuple(t) if matches!(&t[1], ForeignValue::Token { typeid, id, .. } if typeid == "Iterator" && id == "obj1"))
        );
    }

    #[test]
    fn code_is_never_loaded() {
        // cos\nsystem\n(S'touch /tmp/x'\ntR.
        let evil = b"cos\nsystem\n(S'touch /tmp/x'\ntR.";
        let e = unpickle(evil, 128).unwrap_err();
        assert!(e.0.contains("os.system"), "{e}");
        // The same through STACK_GLOBAL (protocol 4).
        let evil4 = b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x04true\x85R.";
        assert!(unpickle(evil4, 128).unwrap_err().0.contains("os.system"));
    }

    #[test]
    fn hostile_shapes_are_errors_not_crashes() {
        // 100,000 nested lists: read in a loop, refused by depth on conversion.
        let mut deep = vec![0x80, 4];
        deep.extend(std::iter::repeat_n(b']', 100_000));
        deep.extend(std::iter::repeat_n(b'a', 99_999));
        deep.push(b'.');
        assert!(
            unpickle(&deep, 128)
                .unwrap_err()
                .0
                .contains("nested too deeply")
        );
        // A list that contains itself.
        let cycle = b"\x80\x04]\x94h\x00a.";
        assert!(
            unpickle(cycle, 128)
                .unwrap_err()
                .0
                .contains("nested too deeply")
        );
        // A 2 GiB length with a few bytes behind it.
        let big = b"\x80\x04X\x00\x00\x00\x80abc";
        assert!(unpickle(big, 128).unwrap_err().0.contains("announces"));
        let huge = b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xffabc";
        assert!(unpickle(huge, 128).unwrap_err().0.contains("announces"));
        // A memo reference never stored, a truncated pickle, garbage.
        assert!(
            unpickle(b"\x80\x04h\x07.", 128)
                .unwrap_err()
                .0
                .contains("memo")
        );
        assert!(unpickle(b"\x80\x04\x8c\x05ab", 128).is_err());
        assert!(unpickle(b"\xff\xfe", 128).is_err());
        assert!(unpickle(b"", 128).is_err());
        assert!(unpickle(b"N.N", 128).unwrap_err().0.contains("follow"));
    }

    #[test]
    fn protocol_zero_and_two_values_read() {
        assert_eq!(
            unpickle(
                b"(lp0\nI1\naI00\naF1.5\naS'a\\'b'\np1\naVh\\u00e9\np2\nag1\na.",
                128
            )
            .unwrap(),
            ForeignValue::List(vec![
                ForeignValue::Int(1),
                ForeignValue::Bool(false),
                ForeignValue::Float(1.5),
                ForeignValue::Str("a'b".into()),
                ForeignValue::Str("hé".into()),
                ForeignValue::Str("a'b".into()),
            ])
        );
        // Protocol 2 bytes: _codecs.encode('\xff', 'latin1').
        let bytes =
            b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00\xc3\xbfX\x06\x00\x00\x00latin1\x86R.";
        assert_eq!(
            unpickle(bytes, 128).unwrap(),
            ForeignValue::Bytes(vec![0xff])
        );
        // A big integer (2**70).
        let long = b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x40.";
        assert_eq!(
            crate::values::value::big_to_i128(match &unpickle(long, 128).unwrap() {
                ForeignValue::BigInt(b) => b,
                other => panic!("{other:?}"),
            }),
            Some(1i128 << 70)
        );
    }
}
