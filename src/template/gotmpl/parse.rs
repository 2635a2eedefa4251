//! The parser: a port of Go's `text/template/parse`, turning the lexer's
//! items into a tree per template (the main one plus every `define` and
//! `block`). It keeps Go's rules and its error texts: variables are scoped
//! to the control structure that declares them, `else if`/`else with`
//! chains share one `end`, `break`/`continue` only inside `range`, and a
//! function must exist when it is named.

use std::collections::HashMap;
use std::fmt;

use super::lex::{Item, Kind, LexError, lex};

/// A sequence of nodes.
pub type List = Vec<Node>;

/// One node of a template's tree. Positions are byte offsets into the source.
#[derive(Debug)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Branch),
    Range(Branch),
    With(Branch),
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break(usize),
    Continue(usize),
}

/// The shared shape of `if`, `range` and `with`.
#[derive(Debug)]
pub struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: List,
    pub else_list: Option<List>,
}

/// A pipeline, with the variables it declares (`$x :=`) or assigns (`$x =`).
#[derive(Debug)]
pub struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decls: Vec<String>,
    pub cmds: Vec<Command>,
}

/// One command of a pipeline: an operand or a function and its arguments.
#[derive(Debug)]
pub struct Command {
    pub pos: usize,
    pub args: Vec<Arg>,
}

/// An operand.
#[derive(Debug)]
pub enum Arg {
    /// `.A.B`: the field names.
    Field {
        pos: usize,
        names: Vec<String>,
    },
    /// `$x.A.B`: `names[0]` is the variable.
    Variable {
        pos: usize,
        names: Vec<String>,
    },
    Dot(usize),
    Nil(usize),
    Bool {
        pos: usize,
        value: bool,
    },
    Number(Number),
    /// A string constant: its quoted source text and its value.
    String {
        pos: usize,
        quoted: String,
        text: String,
    },
    /// A function name.
    Identifier {
        pos: usize,
        name: String,
    },
    /// A parenthesized pipeline.
    Pipe(Box<Pipe>),
    /// `(x).A.B`: fields of an operand that is not a field or a variable.
    Chain {
        pos: usize,
        node: Box<Arg>,
        fields: Vec<String>,
    },
}

/// A numeric constant, with every interpretation that fits it (Go's `NumberNode`).
#[derive(Debug, Clone)]
pub struct Number {
    pub pos: usize,
    pub text: String,
    pub int: Option<i64>,
    pub uint: Option<u64>,
    pub float: Option<f64>,
    /// A character constant (`'a'`): an integer, never a float argument.
    pub is_char: bool,
}

/// Every tree one source defines: the main template and the named ones.
#[derive(Debug, Default)]
pub struct Trees {
    pub main: List,
    pub defined: HashMap<String, List>,
}

/// A parse error at a byte offset.
#[derive(Debug)]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
}

type Result<T> = std::result::Result<T, ParseError>;

/// Parses `source` with the given delimiters; `is_function` says which
/// names exist.
pub fn parse(
    source: &str,
    left: &str,
    right: &str,
    is_function: &dyn Fn(&str) -> bool,
) -> Result<Trees> {
    let lexed = lex(source, left, right);
    let mut parser = Parser {
        items: lexed.items,
        lex_error: lexed.error,
        at: 0,
        vars: vec!["$".to_owned()],
        range_depth: 0,
        is_function,
        trees: Trees::default(),
    };
    parser.parse_main()?;
    match parser.lex_error {
        Some(e) => Err(ParseError {
            pos: e.pos,
            message: e.message,
        }),
        None => Ok(parser.trees),
    }
}

/// What `itemList` stopped at.
enum Stop {
    End(usize),
    Else(usize),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stop::End(_) => "{{end}}",
            Stop::Else(_) => "{{else}}",
        })
    }
}

/// A node of the body, or where the body stops.
enum Parsed {
    Node(Node),
    Stop(Stop),
}

struct Parser<'s, 'f> {
    items: Vec<Item<'s>>,
    /// Why the items stop early, reported when the parser reaches that point.
    lex_error: Option<LexError>,
    at: usize,
    vars: Vec<String>,
    range_depth: usize,
    is_function: &'f dyn Fn(&str) -> bool,
    trees: Trees,
}

/// How Go's `item.String` shows a token in an error.
fn describe(item: &Item) -> String {
    if item.kind == Kind::Eof {
        return "EOF".to_owned();
    }
    if item.kind.is_keyword() {
        return format!("<{}>", item.text);
    }
    let quoted = quote(item.text);
    if item.text.chars().count() > 10 {
        let short: String = item.text.chars().take(10).collect();
        return format!("{}...", quote(&short));
    }
    quoted
}

/// Go's `strconv.Quote`, for error texts.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_print(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Go's `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols
/// and the ASCII space; not controls, other spaces (U+00A0, U+2028),
/// format characters (U+200B, U+FEFF) or private use.
pub fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return !c.is_ascii_control();
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c, '\u{AD}' | '\u{600}'..='\u{605}' | '\u{61C}' | '\u{6DD}' | '\u{70F}'
            | '\u{8E2}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}' | '\u{E000}'..='\u{F8FF}' | '\u{F0000}'..
            | '\u{E0001}' | '\u{E0020}'..='\u{E007F}' | '\u{FFFE}' | '\u{FFFF}'))
}

impl<'s> Parser<'s, '_> {
    fn error<T>(&self, pos: usize, message: impl Into<String>) -> Result<T> {
        Err(ParseError {
            pos,
            message: message.into(),
        })
    }

    fn next(&mut self) -> Item<'s> {
        let item = self.items[self.at.min(self.items.len() - 1)].clone();
        if self.at < self.items.len() {
            self.at += 1;
        }
        item
    }

    fn backup(&mut self) {
        self.at -= 1;
    }

    fn peek(&self) -> &Item<'s> {
        &self.items[self.at.min(self.items.len() - 1)]
    }

    fn next_non_space(&mut self) -> Item<'s> {
        loop {
            let item = self.next();
            if item.kind != Kind::Space {
                return item;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item<'s> {
        let item = self.next_non_space();
        self.backup();
        item
    }

    fn unexpected<T>(&self, item: &Item, context: &str) -> Result<T> {
        if let (Kind::Error, Some(e)) = (item.kind, &self.lex_error) {
            return self.error(e.pos, e.message.clone());
        }
        self.error(
            item.pos,
            format!("unexpected {} in {context}", describe(item)),
        )
    }

    fn expect(&mut self, kind: Kind, context: &str) -> Result<Item<'s>> {
        let item = self.next_non_space();
        if item.kind != kind {
            return self.unexpected(&item, context);
        }
        Ok(item)
    }

    fn parse_main(&mut self) -> Result<()> {
        while self.peek().kind != Kind::Eof {
            if self.peek().kind == Kind::LeftDelim {
                let mark = self.at;
                self.next();
                if self.next_non_space().kind == Kind::Define {
                    self.parse_definition()?;
                    continue;
                }
                self.at = mark;
            }
            match self.text_or_action()? {
                Parsed::Stop(stop) => {
                    let pos = match stop {
                        Stop::End(p) | Stop::Else(p) => p,
                    };
                    return self.error(pos, format!("unexpected {stop}"));
                }
                Parsed::Node(node) => self.trees.main.push(node),
            }
        }
        Ok(())
    }

    /// `{{define "name"}} … {{end}}`, after `define`.
    fn parse_definition(&mut self) -> Result<()> {
        let context = "define clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, context)?;
        self.expect(Kind::RightDelim, context)?;
        let vars = std::mem::replace(&mut self.vars, vec!["$".to_owned()]);
        let (list, stop) = self.item_list()?;
        self.vars = vars;
        if let Stop::Else(pos) = stop {
            return self.error(pos, format!("unexpected {stop} in {context}"));
        }
        self.add_tree(token.pos, name, list)
    }

    /// Go's `Tree.add`: a second non-empty definition of a name is an error;
    /// an empty one never replaces a non-empty one.
    fn add_tree(&mut self, pos: usize, name: String, list: List) -> Result<()> {
        match self.trees.defined.get(&name) {
            Some(existing) if !is_empty(existing) && !is_empty(&list) => self.error(
                pos,
                format!("template: multiple definition of template {}", quote(&name)),
            ),
            Some(existing) if !is_empty(existing) => Ok(()),
            _ => {
                self.trees.defined.insert(name, list);
                Ok(())
            }
        }
    }

    /// Nodes up to `{{end}}` or `{{else}}`.
    fn item_list(&mut self) -> Result<(List, Stop)> {
        let mut list = List::new();
        while self.peek_non_space().kind != Kind::Eof {
            match self.text_or_action()? {
                Parsed::Stop(stop) => return Ok((list, stop)),
                Parsed::Node(node) => list.push(node),
            }
        }
        let pos = self.peek().pos;
        self.error(pos, "unexpected EOF")
    }

    fn text_or_action(&mut self) -> Result<Parsed> {
        let token = self.next_non_space();
        match token.kind {
            Kind::Text => Ok(Parsed::Node(Node::Text(token.text.to_owned()))),
            Kind::LeftDelim => self.action(),
            _ => self.unexpected(&token, "input"),
        }
    }

    fn action(&mut self) -> Result<Parsed> {
        let token = self.next_non_space();
        let node = match token.kind {
            Kind::Block => self.block_control()?,
            Kind::Break | Kind::Continue => {
                let word = if token.kind == Kind::Break {
                    "{{break}}"
                } else {
                    "{{continue}}"
                };
                let next = self.next_non_space();
                if next.kind != Kind::RightDelim {
                    return self.unexpected(&next, word);
                }
                if self.range_depth == 0 {
                    return self.error(token.pos, format!("{word} outside {{{{range}}}}"));
                }
                if token.kind == Kind::Break {
                    Node::Break(token.pos)
                } else {
                    Node::Continue(token.pos)
                }
            }
            Kind::Else => {
                let peek = self.peek_non_space();
                if peek.kind == Kind::If || peek.kind == Kind::With {
                    return Ok(Parsed::Stop(Stop::Else(peek.pos)));
                }
                let end = self.expect(Kind::RightDelim, "else")?;
                return Ok(Parsed::Stop(Stop::Else(end.pos)));
            }
            Kind::End => {
                let end = self.expect(Kind::RightDelim, "end")?;
                return Ok(Parsed::Stop(Stop::End(end.pos)));
            }
            Kind::If => Node::If(self.control("if")?),
            Kind::Range => Node::Range(self.control("range")?),
            Kind::With => Node::With(self.control("with")?),
            Kind::Template => self.template_control()?,
            _ => {
                self.backup();
                // Variables an action declares persist until the enclosing `end`.
                Node::Action(self.pipeline("command", Kind::RightDelim)?)
            }
        };
        Ok(Parsed::Node(node))
    }

    /// `if`, `range`, `with`: the pipeline, the body and an optional else.
    fn control(&mut self, context: &str) -> Result<Branch> {
        let depth = self.vars.len();
        let result = self.control_body(context);
        self.vars.truncate(depth);
        result
    }

    fn control_body(&mut self, context: &str) -> Result<Branch> {
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let body = self.item_list();
        if context == "range" {
            self.range_depth -= 1;
        }
        let (list, stop) = body?;
        let else_list = match stop {
            Stop::End(_) => None,
            Stop::Else(_) => {
                // `{{else if b}}` reads as `{{else}}{{if b}}…{{end}}{{end}}`,
                // the inner `end` standing for both.
                let chained = self.peek().kind;
                if context == "if" && chained == Kind::If {
                    self.next();
                    Some(vec![Node::If(self.control("if")?)])
                } else if context == "with" && chained == Kind::With {
                    self.next();
                    Some(vec![Node::With(self.control("with")?)])
                } else {
                    let (list, stop) = self.item_list()?;
                    if let Stop::Else(pos) = stop {
                        return self.error(pos, format!("expected end; found {stop}"));
                    }
                    Some(list)
                }
            }
        };
        Ok(Branch {
            pos: pipe.pos,
            pipe,
            list,
            else_list,
        })
    }

    /// `{{block "name" pipeline}} … {{end}}`: defines the template and runs it here.
    fn block_control(&mut self) -> Result<Node> {
        let context = "block clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, context)?;
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        let vars = std::mem::replace(&mut self.vars, vec!["$".to_owned()]);
        let depth = std::mem::take(&mut self.range_depth);
        let body = self.item_list();
        self.vars = vars;
        self.range_depth = depth;
        let (list, stop) = body?;
        if let Stop::Else(pos) = stop {
            return self.error(pos, format!("unexpected {stop} in {context}"));
        }
        self.add_tree(token.pos, name.clone(), list)?;
        Ok(Node::Template {
            pos: token.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn template_control(&mut self) -> Result<Node> {
        let context = "template clause";
        let token = self.next_non_space();
        let name = self.template_name(&token, context)?;
        let pipe = if self.next_non_space().kind == Kind::RightDelim {
            None
        } else {
            self.backup();
            Some(self.pipeline(context, Kind::RightDelim)?)
        };
        Ok(Node::Template {
            pos: token.pos,
            name,
            pipe,
        })
    }

    fn template_name(&self, token: &Item, context: &str) -> Result<String> {
        match token.kind {
            Kind::String | Kind::RawString => self.unquote(token),
            _ => self.unexpected(token, context),
        }
    }

    fn unquote(&self, token: &Item) -> Result<String> {
        unquote(token.text).ok_or_else(|| ParseError {
            pos: token.pos,
            message: "invalid syntax".to_owned(),
        })
    }

    fn pipeline(&mut self, context: &str, end: Kind) -> Result<Pipe> {
        let start = self.peek_non_space().pos;
        let mut pipe = Pipe {
            pos: start,
            is_assign: false,
            decls: Vec::new(),
            cmds: Vec::new(),
        };
        self.declarations(&mut pipe, context)?;
        loop {
            let token = self.next_non_space();
            match token.kind {
                k if k == end => {
                    self.check_pipeline(&pipe, context, token.pos)?;
                    return Ok(pipe);
                }
                Kind::Bool
                | Kind::CharConstant
                | Kind::Dot
                | Kind::Field
                | Kind::Identifier
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.backup();
                    let command = self.command()?;
                    pipe.cmds.push(command);
                }
                _ => return self.unexpected(&token, context),
            }
        }
    }

    /// `$x :=`, `$x =` or (in `range`) `$i, $e :=` at the start of a pipeline.
    fn declarations(&mut self, pipe: &mut Pipe, context: &str) -> Result<()> {
        loop {
            let v = self.peek_non_space();
            if v.kind != Kind::Variable {
                return Ok(());
            }
            let mark = self.at;
            self.next_non_space();
            let after = self.peek().kind;
            let next = self.peek_non_space();
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = next.kind == Kind::Assign;
                    self.next_non_space();
                    pipe.decls.push(v.text.to_owned());
                    self.vars.push(v.text.to_owned());
                    return Ok(());
                }
                Kind::Char if next.text == "," => {
                    self.next_non_space();
                    pipe.decls.push(v.text.to_owned());
                    self.vars.push(v.text.to_owned());
                    if context == "range" && pipe.decls.len() < 2 {
                        match self.peek_non_space().kind {
                            Kind::Variable | Kind::RightDelim | Kind::RightParen => continue,
                            _ => {
                                return self.error(next.pos, "range can only initialize variables");
                            }
                        }
                    }
                    return self.error(next.pos, format!("too many declarations in {context}"));
                }
                _ => {
                    let _ = after;
                    self.at = mark;
                    return Ok(());
                }
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str, pos: usize) -> Result<()> {
        if pipe.cmds.is_empty() {
            return self.error(pos, format!("missing value for {context}"));
        }
        for (i, command) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                command.args[0],
                Arg::Bool { .. } | Arg::Dot(_) | Arg::Nil(_) | Arg::Number(_) | Arg::String { .. }
            ) {
                return self.error(
                    command.pos,
                    format!("non executable command in pipeline stage {}", i + 1),
                );
            }
        }
        Ok(())
    }

    fn command(&mut self) -> Result<Command> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(operand) = self.operand()? {
                args.push(operand);
            }
            let token = self.next();
            match token.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return self.unexpected(&token, "operand"),
            }
            break;
        }
        if args.is_empty() {
            return self.error(pos, "empty command");
        }
        Ok(Command { pos, args })
    }

    fn operand(&mut self) -> Result<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != Kind::Field {
            return Ok(Some(node));
        }
        let pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            fields.push(self.next().text[1..].to_owned());
        }
        Ok(Some(match node {
            Arg::Field { mut names, .. } => {
                names.extend(fields);
                Arg::Field { pos, names }
            }
            Arg::Variable { mut names, .. } => {
                names.extend(fields);
                Arg::Variable { pos, names }
            }
            Arg::Bool { .. } | Arg::String { .. } | Arg::Number(_) | Arg::Nil(_) | Arg::Dot(_) => {
                return self.error(
                    pos,
                    format!("unexpected . after term {}", quote(&node.to_string())),
                );
            }
            node => Arg::Chain {
                pos,
                node: Box::new(node),
                fields,
            },
        }))
    }

    fn term(&mut self) -> Result<Option<Arg>> {
        let token = self.next_non_space();
        let pos = token.pos;
        Ok(Some(match token.kind {
            Kind::Identifier => {
                if !(self.is_function)(token.text) {
                    return self.error(pos, format!("function {} not defined", quote(token.text)));
                }
                Arg::Identifier {
                    pos,
                    name: token.text.to_owned(),
                }
            }
            Kind::Dot => Arg::Dot(pos),
            Kind::Nil => Arg::Nil(pos),
            Kind::Variable => {
                let names: Vec<String> = token.text.split('.').map(str::to_owned).collect();
                if !self.vars.iter().any(|v| *v == names[0]) {
                    return self.error(pos, format!("undefined variable {}", quote(&names[0])));
                }
                Arg::Variable { pos, names }
            }
            Kind::Field => Arg::Field {
                pos,
                names: token.text[1..].split('.').map(str::to_owned).collect(),
            },
            Kind::Bool => Arg::Bool {
                pos,
                value: token.text == "true",
            },
            Kind::CharConstant | Kind::Number => Arg::Number(
                number(pos, token.text, token.kind == Kind::CharConstant)
                    .map_err(|message| ParseError { pos, message })?,
            ),
            Kind::LeftParen => Arg::Pipe(Box::new(
                self.pipeline("parenthesized pipeline", Kind::RightParen)?,
            )),
            Kind::String | Kind::RawString => Arg::String {
                pos,
                quoted: token.text.to_owned(),
                text: self.unquote(&token)?,
            },
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

fn is_empty(list: &List) -> bool {
    list.iter().all(|node| match node {
        Node::Text(text) => text.trim().is_empty(),
        _ => false,
    })
}

/// Go's `strconv.Unquote` for the string forms the lexer produces.
pub fn unquote(text: &str) -> Option<String> {
    if let Some(raw) = text.strip_prefix('`') {
        let raw = raw.strip_suffix('`')?;
        return Some(raw.replace('\r', ""));
    }
    let quote_char = text.chars().next()?;
    let body = text.strip_prefix(quote_char)?.strip_suffix(quote_char)?;
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if c == quote_char || c == '\n' {
                return None;
            }
            out.push(c);
            continue;
        }
        let escaped = chars.next()?;
        match escaped {
            'a' => out.push('\x07'),
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\x0b'),
            '\\' => out.push('\\'),
            '\'' if quote_char == '\'' => out.push('\''),
            '"' if quote_char == '"' => out.push('"'),
            'x' | 'u' | 'U' => {
                let digits = match escaped {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = (0..digits).filter_map(|_| chars.next()).collect();
                if hex.len() != digits {
                    return None;
                }
                let code = u32::from_str_radix(&hex, 16).ok()?;
                if escaped == 'x' {
                    // A byte: only ASCII keeps the string valid UTF-8 here.
                    out.push(char::from_u32(code).filter(char::is_ascii)?);
                } else {
                    out.push(char::from_u32(code)?);
                }
            }
            '0'..='7' => {
                let mut code = escaped.to_digit(8)?;
                for _ in 0..2 {
                    code = code * 8 + chars.next()?.to_digit(8)?;
                }
                out.push(char::from_u32(code).filter(char::is_ascii)?);
            }
            _ => return None,
        }
    }
    if quote_char == '\'' && out.chars().count() != 1 {
        return None;
    }
    Some(out)
}

/// Go's `newNumber`: every reading of a numeric or character constant.
fn number(pos: usize, text: &str, is_char: bool) -> std::result::Result<Number, String> {
    let mut n = Number {
        pos,
        text: text.to_owned(),
        int: None,
        uint: None,
        float: None,
        is_char,
    };
    if is_char {
        let c = unquote(text)
            .and_then(|s| s.chars().next())
            .ok_or_else(|| format!("malformed character constant: {text}"))?;
        let code = c as u32;
        n.int = Some(code.into());
        n.uint = Some(code.into());
        n.float = Some(code.into());
        return Ok(n);
    }
    if text.ends_with('i') {
        return Err(format!("complex numbers are not supported: {text}"));
    }
    n.uint = parse_uint(text);
    n.int = parse_int(text);
    if n.int == Some(0) {
        n.uint = Some(0);
    }
    if let Some(i) = n.int {
        n.float = Some(i as f64);
    } else if let Some(u) = n.uint {
        n.float = Some(u as f64);
    } else if let Some(f) = parse_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) || is_hex(text) && !text.contains(['p', 'P']) {
            return Err(format!("integer overflow: {text}"));
        }
        n.float = Some(f);
        if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
            n.int = Some(f as i64);
        }
        if f.fract() == 0.0 && f >= 0.0 && f < u64::MAX as f64 {
            n.uint = Some(f as u64);
        }
    }
    if n.int.is_none() && n.uint.is_none() && n.float.is_none() {
        return Err(format!("illegal number syntax: {}", quote(text)));
    }
    Ok(n)
}

fn is_hex(text: &str) -> bool {
    let t = text.trim_start_matches(['+', '-']);
    t.starts_with("0x") || t.starts_with("0X")
}

/// `strconv.ParseUint(text, 0, 64)`: base prefixes and `_` separators.
fn parse_uint(text: &str) -> Option<u64> {
    let (radix, digits) = match text.get(..2) {
        Some("0x" | "0X") => (16, &text[2..]),
        Some("0o" | "0O") => (8, &text[2..]),
        Some("0b" | "0B") => (2, &text[2..]),
        _ if text.len() > 1 && text.starts_with('0') => (8, &text[1..]),
        _ => (10, text),
    };
    if digits.is_empty() || digits.starts_with('_') && radix == 10 {
        return None;
    }
    let underscores = digits.contains('_');
    if underscores && !underscores_ok(text) {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || clean.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(&clean, radix).ok()
}

/// `strconv.ParseInt(text, 0, 64)`.
fn parse_int(text: &str) -> Option<i64> {
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let magnitude = parse_uint(body)?;
    if negative {
        if magnitude <= i64::MAX as u64 + 1 {
            Some((magnitude as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Go's `underscoreOK`: each `_` sits between digits (or after a prefix).
pub(super) fn underscores_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    // The last thing seen: ^ the start, 0 a digit or prefix, _ or !.
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    for &c in &s[i..] {
        if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
    }
    saw != b'_'
}

/// `strconv.ParseFloat(text, 64)` for decimal forms (hex floats unsupported).
fn parse_float(text: &str) -> Option<f64> {
    if is_hex(text) {
        return None;
    }
    if text.contains('_') && !underscores_ok(text) {
        return None;
    }
    let clean: String = text.chars().filter(|&c| c != '_').collect();
    let body = clean.trim_start_matches(['+', '-']);
    if body.is_empty() || !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if body
        .chars()
        .any(|c| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
    {
        return None;
    }
    // Past f64's range Go's ParseFloat fails (ErrRange) where Rust's
    // parse gives infinity.
    clean.parse().ok().filter(|f: &f64| f.is_finite())
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decls.is_empty() {
            f.write_str(&self.decls.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, command) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{command}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, arg) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            match arg {
                Arg::Pipe(pipe) => write!(f, "({pipe})")?,
                arg => write!(f, "{arg}")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Field { names, .. } => {
                for name in names {
                    write!(f, ".{name}")?;
                }
                Ok(())
            }
            Arg::Variable { names, .. } => f.write_str(&names.join(".")),
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool { value, .. } => write!(f, "{value}"),
            Arg::Number(n) => f.write_str(&n.text),
            Arg::String { quoted, .. } => f.write_str(quoted),
            Arg::Identifier { name, .. } => f.write_str(name),
            Arg::Pipe(pipe) => write!(f, "({pipe})"),
            Arg::Chain { node, fields, .. } => {
                match &**node {
                    Arg::Pipe(pipe) => write!(f, "({pipe})")?,
                    node => write!(f, "{node}")?,
                }
                for field in fields {
                    write!(f, ".{field}")?;
                }
                Ok(())
            }
        }
    }
}

impl Arg {
    pub fn pos(&self) -> usize {
        match self {
            Arg::Field { pos, .. }
            | Arg::Variable { pos, .. }
            | Arg::Dot(pos)
            | Arg::Nil(pos)
            | Arg::Bool { pos, .. }
            | Arg::String { pos, .. }
            | Arg::Identifier { pos, .. }
            | Arg::Chain { pos, .. } => *pos,
            Arg::Number(n) => n.pos,
            Arg::Pipe(pipe) => pipe.pos,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any_function(name: &str) -> bool {
        matches!(name, "printf" | "service" | "len" | "eq")
    }

    fn parse_ok(source: &str) -> Trees {
        parse(source, "{{", "}}", &any_function).expect("parses")
    }

    fn error(source: &str) -> String {
        parse(source, "{{", "}}", &any_function)
            .expect_err("fails")
            .message
    }

    #[test]
    fn pipelines_print_as_go_prints_them() {
        let trees = parse_ok(
            r#"{{$x := printf "%d" 1 | len}}{{range $i, $e := service "web"}}{{$e.Address}}{{end}}"#,
        );
        let Node::Action(pipe) = &trees.main[0] else {
            panic!("action expected")
        };
        assert_eq!(pipe.to_string(), r#"$x := printf "%d" 1 | len"#);
        let Node::Range(branch) = &trees.main[1] else {
            panic!("range expected")
        };
        assert_eq!(branch.pipe.decls, ["$i", "$e"]);
        assert_eq!(branch.pipe.to_string(), r#"$i, $e := service "web""#);
    }

    #[test]
    fn else_if_chains_share_one_end() {
        let trees = parse_ok("{{if 1}}a{{else if 2}}b{{else}}c{{end}}");
        let Node::If(outer) = &trees.main[0] else {
            panic!("if expected")
        };
        let inner = outer.else_list.as_ref().expect("else");
        assert!(matches!(&inner[0], Node::If(b) if b.else_list.is_some()));
    }

    #[test]
    fn variables_are_scoped_to_their_control() {
        assert_eq!(
            error("{{if 1}}{{$x := 1}}{{end}}{{$x}}"),
            r#"undefined variable "$x""#
        );
        parse_ok("{{$x := 1}}{{if 1}}{{$x = 2}}{{end}}{{$x}}");
    }

    #[test]
    fn errors_use_go_texts() {
        assert_eq!(error("{{nope 1}}"), r#"function "nope" not defined"#);
        assert_eq!(error("{{break}}"), "{{break}} outside {{range}}");
        assert_eq!(error("{{end}}"), "unexpected {{end}}");
        assert_eq!(error("{{if}}{{end}}"), "missing value for if");
        assert_eq!(
            error("{{len | 1}}"),
            "non executable command in pipeline stage 2"
        );
        assert_eq!(error("{{if 1}}"), "unexpected EOF");
        assert_eq!(
            error("{{range 1}}{{else}}{{else}}{{end}}"),
            "expected end; found {{else}}"
        );
        assert_eq!(error(r#"{{"a".x}}"#), r#"unexpected . after term "\"a\"""#);
        assert_eq!(error("{{1 2 else}}"), "unexpected <else> in operand");
        assert_eq!(
            error(r#"{{define "a"}}x{{end}}{{define "a"}}y{{end}}"#),
            r#"template: multiple definition of template "a""#
        );
    }

    #[test]
    fn a_lex_error_waits_until_the_parser_reaches_it() {
        // Go's lexer is lazy: the stray `}` fails the parse before the lexer
        // would have refused the `:` after it.
        assert_eq!(error("{{ .A }:{{ .B }}"), r#"unexpected "}" in operand"#);
        assert_eq!(error("{{ .A }}{{ 3x }}"), r#"bad number syntax: "3x""#);
    }

    #[test]
    fn numbers_take_every_reading_that_fits() {
        let n = number(0, "0x1F", false).expect("hex");
        assert_eq!((n.int, n.uint, n.float), (Some(31), Some(31), Some(31.0)));
        let n = number(0, "1e3", false).expect("exponent");
        assert_eq!((n.int, n.float), (Some(1000), Some(1000.0)));
        let n = number(0, "-2.5", false).expect("float");
        assert_eq!((n.int, n.uint, n.float), (None, None, Some(-2.5)));
        assert_eq!(
            number(0, "1_000", false).expect("underscore").int,
            Some(1000)
        );
        assert_eq!(number(0, "017", false).expect("octal").int, Some(15));
        assert_eq!(
            number(0, "99999999999999999999", false).expect_err("overflow"),
            "integer overflow: 99999999999999999999"
        );
        assert_eq!(
            number(0, "1e400", false).expect_err("past f64"),
            "illegal number syntax: \"1e400\""
        );
        let c = number(0, "'a'", true).expect("char");
        assert_eq!(c.int, Some(97));
    }

    #[test]
    fn strings_unquote_as_go_does() {
        assert_eq!(unquote(r#""a\tb\"c\u00e9""#).as_deref(), Some("a\tb\"cé"));
        assert_eq!(unquote("`raw\\n`").as_deref(), Some("raw\\n"));
        assert_eq!(unquote(r#""\q""#), None);
    }

    #[test]
    fn define_and_block_add_named_trees() {
        let trees = parse_ok(r#"{{define "a"}}A{{end}}{{block "b" .}}B{{end}}x"#);
        assert!(trees.defined.contains_key("a"));
        assert!(trees.defined.contains_key("b"));
        assert!(matches!(&trees.main[0], Node::Template { name, .. } if name == "b"));
    }
}
