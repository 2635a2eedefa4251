//! The lexer of Go's text/template, ported from Go's `text/template/parse`
//! (lex.go) rule for rule: delimiters (custom ones too), `{{-`/`-}}` trim
//! markers, comments, and the tokens inside an action. It runs to the end
//! or to the first error; like Go's lazy lexer, an error is an item at the
//! end of the list, so a parse error on an earlier token is reported first.

/// What kind of token an [`Item`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    LeftDelim,
    RightDelim,
    Space,
    Bool,
    Char,
    CharConstant,
    Number,
    String,
    RawString,
    Field,
    Variable,
    Identifier,
    Dot,
    Nil,
    Assign,
    Declare,
    Pipe,
    LeftParen,
    RightParen,
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Range,
    Template,
    With,
    Eof,
    /// Where lexing stopped with the error [`Lexed::error`].
    Error,
}

impl Kind {
    /// Keywords (`if`, `range`, `end`, …), which Go's errors show as `<if>`.
    pub fn is_keyword(self) -> bool {
        matches!(
            self,
            Kind::Block
                | Kind::Break
                | Kind::Continue
                | Kind::Define
                | Kind::Else
                | Kind::End
                | Kind::If
                | Kind::Range
                | Kind::Template
                | Kind::With
        )
    }
}

/// One token: its kind, its text, and where it starts (a byte offset).
#[derive(Clone, Debug)]
pub struct Item<'s> {
    pub kind: Kind,
    pub text: &'s str,
    pub pos: usize,
}

/// A lexical error at a byte offset.
#[derive(Debug)]
pub struct LexError {
    pub pos: usize,
    pub message: String,
}

const SPACE_CHARS: &[char] = &[' ', '\t', '\r', '\n'];
const LEFT_COMMENT: &str = "/*";
const RIGHT_COMMENT: &str = "*/";

fn is_space(c: char) -> bool {
    SPACE_CHARS.contains(&c)
}

fn is_alphanumeric(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim_marker(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}

struct Lexer<'s> {
    input: &'s str,
    left: &'s str,
    right: &'s str,
    start: usize,
    pos: usize,
    paren_depth: usize,
    items: Vec<Item<'s>>,
}

/// The items of a source and, if lexing stopped early, why.
pub struct Lexed<'s> {
    /// Ends with an [`Kind::Eof`] item, or a [`Kind::Error`] item when
    /// `error` is set.
    pub items: Vec<Item<'s>>,
    pub error: Option<LexError>,
}

/// Splits `input` into items, with `left`/`right` as the action delimiters.
pub fn lex<'s>(input: &'s str, left: &'s str, right: &'s str) -> Lexed<'s> {
    let mut lexer = Lexer {
        input,
        left,
        right,
        start: 0,
        pos: 0,
        paren_depth: 0,
        items: Vec::new(),
    };
    let error = lexer.run().err();
    if let Some(error) = &error {
        lexer.items.push(Item {
            kind: Kind::Error,
            text: "",
            pos: error.pos,
        });
    }
    Lexed {
        items: lexer.items,
        error,
    }
}

impl<'s> Lexer<'s> {
    fn rest(&self) -> &'s str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn backup(&mut self, c: Option<char>) {
        if let Some(c) = c {
            self.pos -= c.len_utf8();
        }
    }

    fn emit(&mut self, kind: Kind) {
        self.items.push(Item {
            kind,
            text: &self.input[self.start..self.pos],
            pos: self.start,
        });
        self.start = self.pos;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            pos: self.start,
            message: message.into(),
        })
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn run(&mut self) -> Result<(), LexError> {
        loop {
            if !self.text()? {
                return Ok(());
            }
            self.left_delim()?;
        }
    }

    /// Text up to the next left delimiter (emitted unless empty); false at
    /// the end of the input.
    fn text(&mut self) -> Result<bool, LexError> {
        let Some(x) = self.rest().find(self.left) else {
            self.pos = self.input.len();
            if self.pos > self.start {
                self.emit(Kind::Text);
            }
            self.emit(Kind::Eof);
            return Ok(false);
        };
        if x > 0 {
            self.pos += x;
            let delim_end = self.pos + self.left.len();
            let mut trim = 0;
            if has_left_trim_marker(&self.input[delim_end..]) {
                let text = &self.input[self.start..self.pos];
                trim = text.len() - text.trim_end_matches(SPACE_CHARS).len();
            }
            self.pos -= trim;
            if self.pos > self.start {
                self.emit(Kind::Text);
            }
            self.pos += trim;
            self.ignore();
        }
        Ok(true)
    }

    fn at_right_delim(&self) -> (bool, bool) {
        let rest = self.rest();
        if has_right_trim_marker(rest) && rest[2..].starts_with(self.right) {
            return (true, true);
        }
        (rest.starts_with(self.right), false)
    }

    fn left_delim(&mut self) -> Result<(), LexError> {
        self.pos += self.left.len();
        let trim = has_left_trim_marker(self.rest());
        let after_marker = if trim { 2 } else { 0 };
        if self.input[self.pos + after_marker..].starts_with(LEFT_COMMENT) {
            self.pos += after_marker;
            self.ignore();
            return self.comment();
        }
        self.emit(Kind::LeftDelim);
        self.pos += after_marker;
        self.ignore();
        self.paren_depth = 0;
        self.inside_action()
    }

    fn comment(&mut self) -> Result<(), LexError> {
        self.pos += LEFT_COMMENT.len();
        let Some(x) = self.rest().find(RIGHT_COMMENT) else {
            return self.error("unclosed comment");
        };
        self.pos += x + RIGHT_COMMENT.len();
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.error("comment ends before closing delimiter");
        }
        if trim {
            self.pos += 2;
        }
        self.pos += self.right.len();
        if trim {
            self.skip_leading_space();
        }
        self.ignore();
        Ok(())
    }

    fn skip_leading_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(SPACE_CHARS).len();
    }

    fn right_delim(&mut self) {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.pos += 2;
            self.ignore();
        }
        self.pos += self.right.len();
        self.emit(Kind::RightDelim);
        if trim {
            self.skip_leading_space();
            self.ignore();
        }
    }

    fn inside_action(&mut self) -> Result<(), LexError> {
        loop {
            let (delim, _) = self.at_right_delim();
            if delim {
                if self.paren_depth == 0 {
                    self.right_delim();
                    return Ok(());
                }
                return self.error("unclosed left paren");
            }
            let c = self.next();
            match c {
                None => return self.error("unclosed action"),
                Some(c) if is_space(c) => {
                    self.backup(Some(c));
                    if self.space() {
                        self.right_delim();
                        return Ok(());
                    }
                }
                Some('=') => self.emit(Kind::Assign),
                Some(':') => {
                    if self.next() != Some('=') {
                        return self.error("expected :=");
                    }
                    self.emit(Kind::Declare);
                }
                Some('|') => self.emit(Kind::Pipe),
                Some('"') => self.quote()?,
                Some('`') => self.raw_quote()?,
                Some('$') => self.variable()?,
                Some('\'') => self.char_constant()?,
                Some('.') if !self.peek().is_some_and(|c| c.is_ascii_digit()) => {
                    self.field_or_variable(Kind::Field)?
                }
                Some(c) if c == '.' || c == '+' || c == '-' || c.is_ascii_digit() => {
                    self.backup(Some(c));
                    self.number()?;
                }
                Some(c) if is_alphanumeric(c) => {
                    self.backup(Some(c));
                    self.identifier()?;
                }
                Some('(') => {
                    self.paren_depth += 1;
                    self.emit(Kind::LeftParen);
                }
                Some(')') => {
                    if self.paren_depth == 0 {
                        return self.error("unexpected right paren");
                    }
                    self.paren_depth -= 1;
                    self.emit(Kind::RightParen);
                }
                Some(c) if c.is_ascii() && !c.is_ascii_control() => self.emit(Kind::Char),
                Some(c) => {
                    return self.error(format!(
                        "unrecognized character in action: U+{:04X}{}",
                        c as u32,
                        if c.is_control() {
                            String::new()
                        } else {
                            format!(" '{c}'")
                        }
                    ));
                }
            }
        }
    }

    /// A run of spaces; true when it ends the action (`␠-}}` right after a
    /// single space), in which case nothing is emitted.
    fn space(&mut self) -> bool {
        let mut count = 0;
        while self.peek().is_some_and(is_space) {
            self.next();
            count += 1;
        }
        let before = &self.input[self.pos - 1..];
        if has_right_trim_marker(before) && before[2..].starts_with(self.right) {
            self.pos -= 1;
            if count == 1 {
                return true;
            }
        }
        self.emit(Kind::Space);
        false
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) || ".,|:)(".contains(c) => true,
            _ => self.rest().starts_with(self.right),
        }
    }

    fn bad_character(&self, c: Option<char>) -> LexError {
        let c = c.unwrap_or('\u{FFFD}');
        LexError {
            pos: self.start,
            message: format!("bad character U+{:04X} '{c}'", c as u32),
        }
    }

    fn identifier(&mut self) -> Result<(), LexError> {
        loop {
            let c = self.next();
            if c.is_some_and(is_alphanumeric) {
                continue;
            }
            self.backup(c);
            if !self.at_terminator() {
                return Err(self.bad_character(c));
            }
            let word = &self.input[self.start..self.pos];
            let kind = match word {
                "block" => Kind::Block,
                "break" => Kind::Break,
                "continue" => Kind::Continue,
                "define" => Kind::Define,
                "else" => Kind::Else,
                "end" => Kind::End,
                "if" => Kind::If,
                "range" => Kind::Range,
                "nil" => Kind::Nil,
                "template" => Kind::Template,
                "with" => Kind::With,
                "true" | "false" => Kind::Bool,
                _ => Kind::Identifier,
            };
            self.emit(kind);
            return Ok(());
        }
    }

    fn variable(&mut self) -> Result<(), LexError> {
        if self.at_terminator() {
            self.emit(Kind::Variable);
            return Ok(());
        }
        self.field_or_variable(Kind::Variable)
    }

    fn field_or_variable(&mut self, kind: Kind) -> Result<(), LexError> {
        if self.at_terminator() {
            self.emit(if kind == Kind::Variable {
                Kind::Variable
            } else {
                Kind::Dot
            });
            return Ok(());
        }
        let c = loop {
            let c = self.next();
            if !c.is_some_and(is_alphanumeric) {
                self.backup(c);
                break c;
            }
        };
        if !self.at_terminator() {
            return Err(self.bad_character(c));
        }
        self.emit(kind);
        Ok(())
    }

    fn delimited(&mut self, close: char, unterminated: &str) -> Result<(), LexError> {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    None | Some('\n') => return self.error(unterminated),
                    Some(_) => {}
                },
                None | Some('\n') => return self.error(unterminated),
                Some(c) if c == close => return Ok(()),
                Some(_) => {}
            }
        }
    }

    fn char_constant(&mut self) -> Result<(), LexError> {
        self.delimited('\'', "unterminated character constant")?;
        self.emit(Kind::CharConstant);
        Ok(())
    }

    fn quote(&mut self) -> Result<(), LexError> {
        self.delimited('"', "unterminated quoted string")?;
        self.emit(Kind::String);
        Ok(())
    }

    fn raw_quote(&mut self) -> Result<(), LexError> {
        loop {
            match self.next() {
                None => return self.error("unterminated raw quoted string"),
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(Kind::RawString);
        Ok(())
    }

    fn number(&mut self) -> Result<(), LexError> {
        if !self.scan_number() {
            return self.error(format!(
                "bad number syntax: {:?}",
                &self.input[self.start..self.pos]
            ));
        }
        if matches!(self.peek(), Some('+' | '-')) {
            // Complex numbers are not supported: Go's would be too, rarely.
            self.scan_number();
            return self.error(format!(
                "bad number syntax: {:?}",
                &self.input[self.start..self.pos]
            ));
        }
        self.emit(Kind::Number);
        Ok(())
    }

    fn scan_number(&mut self) -> bool {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if self.peek().is_some_and(is_alphanumeric) {
            self.next();
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(input: &str) -> Vec<(Kind, &str)> {
        let lexed = lex(input, "{{", "}}");
        assert!(lexed.error.is_none(), "{input}");
        lexed.items.into_iter().map(|i| (i.kind, i.text)).collect()
    }

    #[test]
    fn trim_markers_eat_the_space_around_an_action() {
        assert_eq!(
            kinds("a  \n{{- .X -}}\n  b"),
            vec![
                (Kind::Text, "a"),
                (Kind::LeftDelim, "{{"),
                (Kind::Field, ".X"),
                (Kind::RightDelim, "}}"),
                (Kind::Text, "b"),
                (Kind::Eof, ""),
            ]
        );
    }

    #[test]
    fn comments_vanish_and_may_trim() {
        assert_eq!(
            kinds("a {{- /* hi */ -}} b"),
            vec![(Kind::Text, "a"), (Kind::Text, "b"), (Kind::Eof, "")]
        );
    }

    #[test]
    fn custom_delimiters() {
        let items = lex("[[ .A ]]{{x}}", "[[", "]]").items;
        let kinds: Vec<Kind> = items.iter().map(|i| i.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::LeftDelim,
                Kind::Space,
                Kind::Field,
                Kind::Space,
                Kind::RightDelim,
                Kind::Text,
                Kind::Eof
            ]
        );
    }

    fn error(input: &str) -> LexError {
        let lexed = lex(input, "{{", "}}");
        let last = lexed.items.last().unwrap();
        let error = lexed.error.expect(input);
        assert_eq!((last.kind, last.pos), (Kind::Error, error.pos));
        error
    }

    #[test]
    fn errors_say_what_and_where() {
        let err = error("ab{{ \"x }}");
        assert_eq!(
            (err.pos, err.message.as_str()),
            (5, "unterminated quoted string")
        );
        let err = error("{{ 3x }}");
        assert_eq!(err.message, "bad number syntax: \"3x\"");
        assert_eq!(error("{{ .a").message, "unclosed action");
    }
}
