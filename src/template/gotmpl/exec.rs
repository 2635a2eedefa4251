//! The executor: a port of Go's `text/template` `exec.go`. It walks the
//! trees with Go's rules — pipelines pass their value as the last argument
//! of the next command, arguments are checked against the function's Go
//! parameter types, `and`/`or` short-circuit, variables live until the
//! `end` of the control that declared them — and reports errors in Go's
//! shape, located at the node that failed.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use super::data::{self, Lookup};
use super::fmt;
use super::functions::{self, Param, table};
use super::parse::{Arg, Branch, Command, List, Node, Number, Pipe, Trees, quote};
use super::value::{Elem, INTERFACES, STRINGS, Scratch, Value};
use crate::template::Options;
use crate::template::denylist::DISABLED;

/// text/template's limit is 100000 nested template calls; Go's stacks grow
/// and ours do not, so we stop much earlier, with Go's message.
const MAX_DEPTH: usize = 1000;

/// An execution error: where, in which template, and what.
#[derive(Debug)]
pub struct ExecError {
    /// Byte offset of the failing node, when there is one.
    pub pos: Option<usize>,
    /// The failing node as Go prints it.
    pub context: String,
    pub template: String,
    pub message: String,
}

type Result<T> = std::result::Result<T, ExecError>;

/// How a walk ended: normally, or by `{{break}}`/`{{continue}}`.
enum Flow {
    Normal,
    Break,
    Continue,
}

/// The node an error is reported at.
#[derive(Clone, Copy)]
enum At<'p> {
    None,
    Node(&'p Node),
    Pipe(&'p Pipe),
    Command(&'p Command),
    Arg(&'p Arg),
}

/// The builtins the executor runs itself: they short-circuit, call back
/// into templates, or hand out the render's scratch store.
const OWN: &[&str] = &["and", "or", "call", "executeTemplate", "scratch"];

/// Whether a template may name `name` as a function.
pub fn is_function(name: &str) -> bool {
    OWN.contains(&name) || data::is_function(name) || table().get(name).is_some()
}

/// One execution of a template set.
pub struct Exec<'a, 'p, 'r> {
    trees: &'p Trees,
    lookup: Lookup<'a, 'r>,
    out: String,
    vars: Vec<(&'p str, Value<'a>)>,
    template: &'p str,
    depth: usize,
    at: At<'p>,
    scratch: Rc<RefCell<Scratch<'a>>>,
    options: &'p Options,
}

impl<'a, 'p, 'r> Exec<'a, 'p, 'r> {
    pub fn new(
        trees: &'p Trees,
        name: &'p str,
        lookup: Lookup<'a, 'r>,
        options: &'p Options,
    ) -> Self {
        Exec {
            trees,
            lookup,
            out: String::new(),
            vars: vec![("$", Value::NoValue)],
            template: name,
            depth: 0,
            at: At::None,
            scratch: Rc::default(),
            options,
        }
    }

    /// Runs the main template (its data, `.`, is nil as in consul-template).
    pub fn run(mut self) -> Result<String> {
        let trees = self.trees;
        self.walk_list(&Value::NoValue, &trees.main)?;
        Ok(self.out)
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T> {
        let (pos, context) = match self.at {
            At::None => (None, String::new()),
            At::Node(node) => (Some(node_pos(node)), node_text(node)),
            At::Pipe(pipe) => (Some(pipe.pos), pipe.to_string()),
            At::Command(command) => (Some(command.pos), command.to_string()),
            At::Arg(arg) => (Some(arg.pos()), arg.to_string()),
        };
        // Go 1.26's `ErrorContext` prints the whole node, where older Go
        // cut it after 20 characters; consul-template as the test bed
        // builds it (with Go 1.26) is the reference.
        Err(ExecError {
            pos,
            context,
            template: self.template.to_owned(),
            message: message.into(),
        })
    }

    fn walk_list(&mut self, dot: &Value<'a>, list: &'p List) -> Result<Flow> {
        for node in list {
            match self.walk(dot, node)? {
                Flow::Normal => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Value<'a>, node: &'p Node) -> Result<Flow> {
        self.at = At::Node(node);
        match node {
            Node::Text(text) => self.out.push_str(text),
            Node::Action(pipe) => {
                let value = self.eval_pipeline(dot, pipe)?;
                if pipe.decls.is_empty() {
                    self.at = At::Node(node);
                    self.print(&value)?;
                }
            }
            Node::If(branch) => return self.walk_if_or_with(dot, branch, false),
            Node::With(branch) => return self.walk_if_or_with(dot, branch, true),
            Node::Range(branch) => return self.walk_range(dot, branch),
            Node::Template { name, pipe, .. } => self.walk_template(dot, name, pipe.as_ref())?,
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn print(&mut self, value: &Value<'a>) -> Result<()> {
        if let Value::Chan(_) = value {
            let node = match self.at {
                At::Node(node) => node_text(node),
                _ => String::new(),
            };
            return self.error(format!("can't print {node} of type {}", value.type_name()));
        }
        self.out.push_str(&fmt::print(value));
        Ok(())
    }

    fn walk_if_or_with(&mut self, dot: &Value<'a>, branch: &'p Branch, with: bool) -> Result<Flow> {
        let mark = self.vars.len();
        let value = self.eval_pipeline(dot, &branch.pipe)?;
        let flow = if value.is_true() {
            if with {
                self.walk_list(&value, &branch.list)
            } else {
                self.walk_list(dot, &branch.list)
            }
        } else if let Some(else_list) = &branch.else_list {
            self.walk_list(dot, else_list)
        } else {
            Ok(Flow::Normal)
        };
        self.vars.truncate(mark);
        flow
    }

    fn walk_range(&mut self, dot: &Value<'a>, branch: &'p Branch) -> Result<Flow> {
        let outer = self.vars.len();
        let value = self.eval_pipeline(dot, &branch.pipe)?;
        let items: Vec<(Value<'a>, Value<'a>)> = match &value {
            Value::List(_) | Value::Strings(..) | Value::Chan(_) => {
                let elements = match &value {
                    Value::Chan(items) => items.to_vec(),
                    _ => value.elements().unwrap_or_default(),
                };
                elements
                    .into_iter()
                    .enumerate()
                    .map(|(i, e)| (Value::Int(i as i64), e))
                    .collect()
            }
            Value::StrMap(_) | Value::Map(_) => value.entries().unwrap_or_default(),
            Value::Int(_) | Value::Uint(_) => {
                if branch.pipe.decls.len() > 1 {
                    return self.error(format!(
                        "can't use {} to iterate over more than one variable",
                        fmt::print(&value)
                    ));
                }
                let n = match value {
                    Value::Int(i) => i.max(0) as u64,
                    Value::Uint(u) => u,
                    _ => 0,
                };
                (0..n)
                    .map(|i| {
                        let v = match value {
                            Value::Uint(_) => Value::Uint(i),
                            _ => Value::Int(i as i64),
                        };
                        (v.clone(), v)
                    })
                    .collect()
            }
            Value::NoValue | Value::Nil => Vec::new(),
            other => {
                return self.error(format!(
                    "range can't iterate over {}",
                    fmt::sprint(std::slice::from_ref(other))
                ));
            }
        };
        let mark = self.vars.len();
        let mut flow = Flow::Normal;
        for (index, element) in &items {
            let decls = &branch.pipe.decls;
            if !decls.is_empty() {
                if branch.pipe.is_assign {
                    let first = if decls.len() > 1 { index } else { element };
                    self.set_var(&decls[0], first.clone())?;
                } else {
                    self.set_top_var(1, element.clone());
                }
            }
            if decls.len() > 1 {
                if branch.pipe.is_assign {
                    self.set_var(&decls[1], element.clone())?;
                } else {
                    self.set_top_var(2, index.clone());
                }
            }
            let result = self.walk_list(element, &branch.list);
            self.vars.truncate(mark);
            match result? {
                Flow::Break => break,
                Flow::Normal | Flow::Continue => {}
            }
        }
        if items.is_empty()
            && let Some(else_list) = &branch.else_list
        {
            flow = self.walk_list(dot, else_list)?;
        }
        self.vars.truncate(outer);
        Ok(flow)
    }

    fn walk_template(
        &mut self,
        dot: &Value<'a>,
        name: &'p str,
        pipe: Option<&'p Pipe>,
    ) -> Result<()> {
        let Some(list) = self.trees.defined.get(name) else {
            return self.error(format!("template {} not defined", quote(name)));
        };
        if self.depth >= MAX_DEPTH {
            return self.error(format!("exceeded maximum template depth ({MAX_DEPTH})"));
        }
        let dot = match pipe {
            Some(pipe) => self.eval_pipeline(dot, pipe)?,
            None => Value::NoValue,
        };
        self.call_template(name, list, dot)
    }

    /// Runs a named template with its own variables (`$` is its data).
    fn call_template(&mut self, name: &'p str, list: &'p List, dot: Value<'a>) -> Result<()> {
        let vars = std::mem::replace(&mut self.vars, vec![("$", dot.clone())]);
        let template = std::mem::replace(&mut self.template, name);
        self.depth += 1;
        let result = self.walk_list(&dot, list);
        self.depth -= 1;
        self.template = template;
        self.vars = vars;
        result.map(|_| ())
    }

    /// `$name = value`: Go's setVar, which fails for a variable never
    /// declared (the parser lets `{{ $x = 1 }}` through).
    fn set_var(&mut self, name: &str, value: Value<'a>) -> Result<()> {
        match self.vars.iter_mut().rev().find(|(n, _)| *n == name) {
            Some(slot) => {
                slot.1 = value;
                Ok(())
            }
            None => self.error(format!("undefined variable: {name}")),
        }
    }

    fn set_top_var(&mut self, n: usize, value: Value<'a>) {
        let i = self.vars.len() - n;
        self.vars[i].1 = value;
    }

    fn var(&self, name: &str) -> Result<Value<'a>> {
        match self.vars.iter().rev().find(|(n, _)| *n == name) {
            Some((_, value)) => Ok(value.clone()),
            None => self.error(format!("undefined variable: {name}")),
        }
    }

    fn eval_pipeline(&mut self, dot: &Value<'a>, pipe: &'p Pipe) -> Result<Value<'a>> {
        self.at = At::Pipe(pipe);
        let mut value = None;
        for command in &pipe.cmds {
            value = Some(self.eval_command(dot, command, value)?);
        }
        let value = value.unwrap_or(Value::NoValue);
        for name in &pipe.decls {
            if pipe.is_assign {
                self.set_var(name, value.clone())?;
            } else {
                self.vars.push((name, value.clone()));
            }
        }
        Ok(value)
    }

    fn eval_command(
        &mut self,
        dot: &Value<'a>,
        command: &'p Command,
        last: Option<Value<'a>>,
    ) -> Result<Value<'a>> {
        let first = &command.args[0];
        match first {
            Arg::Field { names, .. } => {
                self.at = At::Arg(first);
                self.eval_field_chain(dot, dot.clone(), names, &command.args, last)
            }
            Arg::Chain { node, fields, .. } => {
                self.eval_chain(dot, first, node, fields, &command.args, last)
            }
            Arg::Identifier { name, .. } => {
                self.at = At::Arg(first);
                self.eval_function(dot, name, At::Command(command), &command.args, last)
            }
            Arg::Pipe(pipe) => {
                self.not_a_function(&command.args, &last)?;
                self.eval_pipeline(dot, pipe)
            }
            Arg::Variable { names, .. } => {
                self.at = At::Arg(first);
                self.eval_variable(dot, names, &command.args, last)
            }
            _ => {
                self.at = At::Arg(first);
                self.not_a_function(&command.args, &last)?;
                match first {
                    Arg::Bool { value, .. } => Ok(Value::Bool(*value)),
                    Arg::Dot(_) => Ok(dot.clone()),
                    Arg::Nil(_) => self.error("nil is not a command"),
                    Arg::Number(n) => self.ideal_constant(n),
                    Arg::String { text, .. } => Ok(Value::string(text.as_str())),
                    _ => unreachable!("executable operands are matched above"),
                }
            }
        }
    }

    fn not_a_function(&self, args: &[Arg], last: &Option<Value<'a>>) -> Result<()> {
        if args.len() > 1 || last.is_some() {
            return self.error(format!("can't give argument to non-function {}", args[0]));
        }
        Ok(())
    }

    fn ideal_constant(&self, n: &Number) -> Result<Value<'a>> {
        let hex_int = n.text.starts_with("0x") || n.text.starts_with("0X");
        let hex_int = hex_int && !n.text.contains(['p', 'P']);
        if let Some(f) = n.float
            && !n.is_char
            && !hex_int
            && n.text.contains(['.', 'e', 'E', 'p', 'P'])
        {
            return Ok(Value::Float(f));
        }
        match (n.int, n.uint) {
            (Some(i), _) => Ok(Value::Int(i)),
            (None, Some(_)) => self.error(format!("{} overflows int", n.text)),
            (None, None) => Ok(Value::Float(n.float.unwrap_or_default())),
        }
    }

    fn eval_chain(
        &mut self,
        dot: &Value<'a>,
        chain: &'p Arg,
        node: &'p Arg,
        fields: &'p [String],
        args: &'p [Arg],
        last: Option<Value<'a>>,
    ) -> Result<Value<'a>> {
        self.at = At::Arg(chain);
        if let Arg::Nil(_) = node {
            return self.error(format!("indirection through explicit nil in {chain}"));
        }
        let receiver = self.eval_arg(dot, Param::Any, node)?;
        self.eval_field_chain(dot, receiver, fields, args, last)
    }

    fn eval_variable(
        &mut self,
        dot: &Value<'a>,
        names: &'p [String],
        args: &'p [Arg],
        last: Option<Value<'a>>,
    ) -> Result<Value<'a>> {
        let value = self.var(&names[0])?;
        if names.len() == 1 {
            self.not_a_function(args, &last)?;
            return Ok(value);
        }
        self.eval_field_chain(dot, value, &names[1..], args, last)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value<'a>,
        mut receiver: Value<'a>,
        names: &'p [String],
        args: &'p [Arg],
        last: Option<Value<'a>>,
    ) -> Result<Value<'a>> {
        let (final_name, path) = names.split_last().expect("a field chain has a name");
        let mut from_interface = false;
        for name in path {
            let element_is_interface = matches!(&receiver, Value::Map(m) if m.elem == Elem::Any);
            receiver = self.eval_field(dot, name, &[], None, receiver, from_interface)?;
            from_interface = element_is_interface;
        }
        self.eval_field(dot, final_name, args, last, receiver, from_interface)
    }

    fn eval_field(
        &mut self,
        dot: &Value<'a>,
        name: &str,
        args: &'p [Arg],
        last: Option<Value<'a>>,
        receiver: Value<'a>,
        from_interface: bool,
    ) -> Result<Value<'a>> {
        let has_args = args.len() > 1 || last.is_some();
        let missing_key_error = self.options.error_on_missing_key;
        // A value read from a `map[string]interface{}` has Go's static type
        // `interface {}`: Go names that type in errors, and a missing key
        // there is a nil interface (under `missingkey=zero`), not "no data".
        let type_name = |value: &Value| match from_interface {
            true => "interface {}",
            false => value.type_name(),
        };
        match &receiver {
            Value::NoValue if missing_key_error => {
                self.error(format!("nil data; no entry for key {}", quote(name)))
            }
            Value::NoValue if from_interface => {
                self.error(format!("nil pointer evaluating interface {{}}.{name}"))
            }
            Value::NoValue => Ok(Value::NoValue),
            Value::Nil => self.error(format!("nil pointer evaluating interface {{}}.{name}")),
            Value::NilPtr(type_name) => {
                self.error(format!("nil pointer evaluating {type_name}.{name}"))
            }
            Value::Scratch(scratch) => {
                let Some((params, variadic)) = scratch_method(name) else {
                    return self.error(format!(
                        "can't evaluate field {name} in type {}",
                        type_name(&receiver)
                    ));
                };
                let scratch = scratch.clone();
                let argv = self.eval_args(dot, name, params, variadic, args, last)?;
                self.call_scratch(&scratch, name, argv)
            }
            Value::Obj(obj) => match obj.field(name) {
                Some(_) if has_args => self.error(format!(
                    "{name} has arguments but cannot be invoked as function"
                )),
                Some(value) => Ok(value),
                None => self.error(format!(
                    "can't evaluate field {name} in type {}",
                    type_name(&receiver)
                )),
            },
            // A field name is a string, which an integer key is not.
            Value::Map(m) if m.elem == Elem::PortGroups => self.error(format!(
                "can't evaluate field {name} in type {}",
                type_name(&receiver)
            )),
            Value::StrMap(_) | Value::Map(_) => {
                if has_args {
                    return self.error(format!("{name} is not a method but has arguments"));
                }
                match receiver.map_get(name) {
                    Some(Some(value)) => Ok(value),
                    _ if missing_key_error => {
                        self.error(format!("map has no entry for key {}", quote(name)))
                    }
                    _ => Ok(receiver.map_zero()),
                }
            }
            _ => self.error(format!(
                "can't evaluate field {name} in type {}",
                type_name(&receiver)
            )),
        }
    }

    /// Calls the function `name` (`args[0]`) with the rest of `args` and
    /// the piped value. `call` is the node Go reports a failed call at: the
    /// whole command, or the bare name when it is an argument.
    fn eval_function(
        &mut self,
        dot: &Value<'a>,
        name: &str,
        call: At<'p>,
        args: &'p [Arg],
        last: Option<Value<'a>>,
    ) -> Result<Value<'a>> {
        // consul-template puts `func(...string) (string, error)` in place
        // of each denied function of its own; Go's builtins stay.
        if self.options.denylist.denies(name) && !functions::is_builtin(name) {
            self.eval_args(dot, name, &[], Some(Param::Str), args, last)?;
            return self.function_failed(call, name, DISABLED);
        }
        let call_args = &args[1..];
        match name {
            "and" | "or" => return self.and_or(dot, name == "or", call_args, last),
            "scratch" => {
                self.eval_args(dot, name, &[], None, args, last)?;
                return Ok(Value::Scratch(self.scratch.clone()));
            }
            "executeTemplate" => {
                let argv =
                    self.eval_args(dot, name, &[Param::Str], Some(Param::Any), args, last)?;
                return self.execute_template(call, argv);
            }
            "call" => {
                // Go names the callee by its node, or by the piped value's
                // `reflect.Value.String`.
                let callee = match (call_args.first(), &last) {
                    (Some(arg), _) => arg.to_string(),
                    (None, Some(Value::Str(text))) => text.to_string(),
                    (None, Some(value)) => format!("<{} Value>", value.type_name()),
                    (None, None) => String::new(),
                };
                let argv =
                    self.eval_args(dot, name, &[Param::Any], Some(Param::Any), args, last)?;
                let message = match &argv[0] {
                    Value::NoValue | Value::Nil => "call of nil".to_owned(),
                    target => format!("non-function {callee} of type {}", target.type_name()),
                };
                return self.function_failed(call, name, &message);
            }
            _ => {}
        }
        if let Some(function) = data::get(name) {
            let argv = self.eval_args(dot, name, function.params, function.variadic, args, last)?;
            return match (function.run)(&mut self.lookup, argv) {
                Ok(value) => Ok(value),
                Err(message) => self.function_failed(call, name, &message),
            };
        }
        let Some(function) = table().get(name) else {
            return self.error(format!("{} is not a defined function", quote(name)));
        };
        let argv = self.eval_args(dot, name, function.params, function.variadic, args, last)?;
        match (function.run)(argv) {
            Ok(value) => Ok(value),
            Err(message) => self.function_failed(call, name, &message),
        }
    }

    /// A call that returned an error, reported at `call` as Go's
    /// `evalCall` reports it.
    fn function_failed<T>(&mut self, call: At<'p>, name: &str, message: &str) -> Result<T> {
        self.at = call;
        self.error(format!("error calling {name}: {message}"))
    }

    /// `and`/`or`: the first argument that decides, unevaluated beyond it.
    fn and_or(
        &mut self,
        dot: &Value<'a>,
        or: bool,
        args: &'p [Arg],
        last: Option<Value<'a>>,
    ) -> Result<Value<'a>> {
        let name = if or { "or" } else { "and" };
        if args.len() + usize::from(last.is_some()) < 1 {
            return self.error(format!(
                "wrong number of args for {name}: want at least 1 got {}",
                args.len()
            ));
        }
        let mut value = Value::NoValue;
        for arg in args {
            value = self.eval_arg(dot, Param::Any, arg)?;
            if value.is_true() == or {
                return Ok(value);
            }
        }
        Ok(last.unwrap_or(value))
    }

    /// Evaluates `args` (the function word first) plus the piped value
    /// against a Go signature, as `evalCall` does.
    fn eval_args(
        &mut self,
        dot: &Value<'a>,
        name: &str,
        params: &[Param],
        variadic: Option<Param>,
        args: &'p [Arg],
        last: Option<Value<'a>>,
    ) -> Result<Vec<Value<'a>>> {
        let given = args.len().saturating_sub(1);
        let count = given + usize::from(last.is_some());
        if variadic.is_some() {
            if count < params.len() {
                return self.error(format!(
                    "wrong number of args for {name}: want at least {} got {given}",
                    params.len()
                ));
            }
        } else if count != params.len() {
            return self.error(format!(
                "wrong number of args for {name}: want {} got {count}",
                params.len()
            ));
        }
        let param_at = |i: usize| params.get(i).copied().or(variadic).unwrap_or(Param::Any);
        let mut argv = Vec::with_capacity(count);
        for (i, arg) in args.iter().skip(1).enumerate() {
            argv.push(self.eval_arg(dot, param_at(i), arg)?);
        }
        if let Some(last) = last {
            argv.push(self.validate(last, param_at(given))?);
        }
        Ok(argv)
    }

    fn eval_arg(&mut self, dot: &Value<'a>, param: Param, arg: &'p Arg) -> Result<Value<'a>> {
        self.at = At::Arg(arg);
        let value = match arg {
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(_) => {
                return match param {
                    Param::Any => Ok(Value::Nil),
                    Param::Strings => Ok(Value::nil_list(STRINGS)),
                    Param::Dict | Param::MergeOption => Ok(Value::Nil),
                    Param::List => Ok(Value::nil_list(INTERFACES)),
                    _ => self.error(format!("cannot assign nil to {}", param_name(param))),
                };
            }
            Arg::Field { names, .. } => {
                self.eval_field_chain(dot, dot.clone(), names, std::slice::from_ref(arg), None)?
            }
            Arg::Variable { names, .. } => {
                self.eval_variable(dot, names, std::slice::from_ref(arg), None)?
            }
            Arg::Pipe(pipe) => self.eval_pipeline(dot, pipe)?,
            Arg::Identifier { name, .. } => {
                self.eval_function(dot, name, At::Arg(arg), std::slice::from_ref(arg), None)?
            }
            Arg::Chain { node, fields, .. } => {
                self.eval_chain(dot, arg, node, fields, std::slice::from_ref(arg), None)?
            }
            Arg::Bool { value, .. } => {
                return match param {
                    Param::Bool | Param::Any => Ok(Value::Bool(*value)),
                    _ => self.constant_mismatch(param, arg),
                };
            }
            Arg::Number(n) => {
                return match param {
                    Param::Any => self.ideal_constant(n),
                    Param::Int => match n.int {
                        Some(i) if !n.text.contains(['.', 'e', 'E']) || n.float.is_some() => {
                            Ok(Value::Int(i))
                        }
                        _ => self.error(format!("expected integer; found {}", n.text)),
                    },
                    _ => self.constant_mismatch(param, arg),
                };
            }
            Arg::String { text, .. } => {
                return match param {
                    Param::Str | Param::Any => Ok(Value::string(text.as_str())),
                    _ => self.constant_mismatch(param, arg),
                };
            }
        };
        // Go checks the value where evaluating it last stood, not at `arg`.
        self.validate(value, param)
    }

    fn constant_mismatch<T>(&self, param: Param, arg: &Arg) -> Result<T> {
        match param {
            Param::Bool => self.error(format!("expected bool; found {arg}")),
            Param::Int => self.error(format!("expected integer; found {arg}")),
            Param::Str => self.error(format!("expected string; found {arg}")),
            Param::Strings | Param::Dict | Param::List | Param::MergeOption | Param::Any => self
                .error(format!(
                    "can't handle {arg} for arg of type {}",
                    param_name(param)
                )),
        }
    }

    /// Go's `validateType`: a value must be assignable to the parameter.
    fn validate(&self, value: Value<'a>, param: Param) -> Result<Value<'a>> {
        let ok = match (&value, param) {
            (_, Param::Any) => true,
            (Value::NoValue, Param::Strings) => return Ok(Value::nil_list(STRINGS)),
            // A nil map: it reads as empty and cannot be written.
            (Value::NoValue | Value::Nil, Param::Dict | Param::MergeOption) => {
                return Ok(Value::Nil);
            }
            (Value::NoValue | Value::Nil, Param::List) => return Ok(Value::nil_list(INTERFACES)),
            (Value::NoValue, _) => {
                return self.error(format!("invalid value; expected {}", param_name(param)));
            }
            (Value::Str(_), Param::Str) | (Value::Int(_), Param::Int) => true,
            (Value::Bool(_), Param::Bool) | (Value::Strings(..), Param::Strings) => true,
            (Value::List(list), Param::Strings) => list.type_name == STRINGS,
            (Value::Map(map), Param::Dict) => map.elem == Elem::Any,
            (Value::List(list), Param::List) => list.type_name == INTERFACES,
            _ => false,
        };
        if !ok {
            return self.error(format!(
                "wrong type for value; expected {}; got {}",
                param_name(param),
                value.type_name()
            ));
        }
        Ok(value)
    }

    /// consul-template's `executeTemplate`; its errors are reported at
    /// `call`, as every failed call is.
    fn execute_template(&mut self, call: At<'p>, argv: Vec<Value<'a>>) -> Result<Value<'a>> {
        const NAME: &str = "executeTemplate";
        let mut argv = argv.into_iter();
        let name = argv.next().unwrap_or(Value::NoValue);
        let rest: Vec<Value<'a>> = argv.collect();
        if rest.len() > 1 {
            let message = format!(
                "executeTemplate: wrong number of arguments, expected 1 or 2, but got {}",
                rest.len() + 1
            );
            return self.function_failed(call, NAME, &message);
        }
        let name = name.as_str().unwrap_or_default().to_owned();
        let Some((name, list)) = self.trees.defined.get_key_value(name.as_str()) else {
            let message = format!(
                "template: no template {} associated with template {}",
                quote(&name),
                quote("")
            );
            return self.function_failed(call, NAME, &message);
        };
        if self.depth >= MAX_DEPTH {
            self.at = call;
            return self.error(format!("exceeded maximum template depth ({MAX_DEPTH})"));
        }
        let dot = rest.into_iter().next().unwrap_or(Value::NoValue);
        let out = std::mem::take(&mut self.out);
        let result = self.call_template(name, list, dot);
        let text = std::mem::replace(&mut self.out, out);
        match result {
            Ok(()) => Ok(Value::string(text)),
            Err(inner) => {
                let message = format!(
                    "template: {}: executing {} at <{}>: {}",
                    inner.template,
                    quote(&inner.template),
                    inner.context,
                    inner.message
                );
                self.function_failed(call, NAME, &message)
            }
        }
    }

    fn call_scratch(
        &self,
        scratch: &Rc<RefCell<Scratch<'a>>>,
        name: &str,
        argv: Vec<Value<'a>>,
    ) -> Result<Value<'a>> {
        let key = argv[0].as_str().unwrap_or_default().to_owned();
        let mut store = scratch.borrow_mut();
        let values = &mut store.values;
        Ok(match name {
            "Key" => Value::Bool(values.contains_key(&key)),
            "Get" => values.get(&key).cloned().unwrap_or(Value::NoValue),
            "Set" => {
                values.insert(key, argv[1].clone());
                Value::str("")
            }
            "SetX" => {
                values.entry(key).or_insert_with(|| argv[1].clone());
                Value::str("")
            }
            "MapSet" | "MapSetX" => {
                let map_key = argv[1].as_str().unwrap_or_default().to_owned();
                // The map is changed in place, as Go's is: a copy taken
                // with Get sees the new entry.
                let map = match values
                    .entry(key.clone())
                    .or_insert_with(|| Value::map(Elem::Any, BTreeMap::new()))
                {
                    Value::Map(map) if map.elem == Elem::Any => map.clone(),
                    _ => {
                        drop(store);
                        return self.error(format!(
                            "error calling {name}: {} is not a map",
                            quote(&key)
                        ));
                    }
                };
                let mut entries = map.entries.borrow_mut();
                if name == "MapSet" || !entries.contains_key(&map_key) {
                    entries.insert(map_key, argv[2].clone());
                }
                Value::str("")
            }
            "MapValues" => match values.get(&key) {
                Some(Value::Map(map)) if map.elem == Elem::Any => {
                    Value::list(map.entries.borrow().values().cloned().collect())
                }
                _ => Value::Nil,
            },
            _ => unreachable!("scratch_method lists the methods"),
        })
    }
}

/// The methods of consul-template's `*Scratch`, with their parameters.
fn scratch_method(name: &str) -> Option<(&'static [Param], Option<Param>)> {
    Some(match name {
        "Key" | "Get" | "MapValues" => (&[Param::Str], None),
        "Set" | "SetX" => (&[Param::Str, Param::Any], None),
        "MapSet" | "MapSetX" => (&[Param::Str, Param::Str, Param::Any], None),
        _ => return None,
    })
}

fn param_name(param: Param) -> &'static str {
    match param {
        Param::Any => "interface {}",
        Param::Str => "string",
        Param::Int => "int",
        Param::Bool => "bool",
        Param::Strings => "[]string",
        Param::Dict => "map[string]interface {}",
        Param::List => "[]interface {}",
        Param::MergeOption => "func(*mergo.Config)",
    }
}

fn node_pos(node: &Node) -> usize {
    match node {
        Node::Text(_) => 0,
        Node::Action(pipe) => pipe.pos,
        Node::If(b) | Node::Range(b) | Node::With(b) => b.pos,
        Node::Template { pos, .. } | Node::Break(pos) | Node::Continue(pos) => *pos,
    }
}

/// A node as Go's `String` methods print it, for error contexts.
fn node_text(node: &Node) -> String {
    fn list_text(list: &List) -> String {
        list.iter().map(node_text).collect()
    }
    fn branch_text(word: &str, b: &Branch) -> String {
        let mut s = format!("{{{{{word} {}}}}}{}", b.pipe, list_text(&b.list));
        if let Some(else_list) = &b.else_list {
            s.push_str(&format!("{{{{else}}}}{}", list_text(else_list)));
        }
        s.push_str("{{end}}");
        s
    }
    match node {
        Node::Text(text) => text.clone(),
        Node::Action(pipe) => format!("{{{{{pipe}}}}}"),
        Node::If(b) => branch_text("if", b),
        Node::Range(b) => branch_text("range", b),
        Node::With(b) => branch_text("with", b),
        Node::Template { name, pipe, .. } => match pipe {
            Some(pipe) => format!("{{{{template {} {pipe}}}}}", quote(name)),
            None => format!("{{{{template {}}}}}", quote(name)),
        },
        Node::Break(_) => "{{break}}".to_owned(),
        Node::Continue(_) => "{{continue}}".to_owned(),
    }
}
