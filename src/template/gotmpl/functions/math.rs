//! consul-template's arithmetic helpers. They take their operands
//! reversed — `{{ 10 | subtract 2 }}` is `10 - 2` — and pick the result's
//! kind from both operands' kinds as its reflection code does: int with
//! int or uint is int64, uint with uint is uint64, anything with a float
//! is float64.

use super::super::fmt::sprintf;
use super::super::value::Value;
use super::{Param, Table};

#[derive(Clone, Copy)]
enum Op {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    Minimum,
    Maximum,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Subtract => "subtract",
            Op::Multiply => "multiply",
            Op::Divide => "divide",
            Op::Modulo => "modulo",
            Op::Minimum => "minimum",
            Op::Maximum => "maximum",
        }
    }
}

const TWO: &[Param] = &[Param::Any, Param::Any];

pub fn register(table: &mut Table) {
    table.add("add", TWO, None, |a| arithmetic(Op::Add, &a[1], &a[0]));
    table.add("subtract", TWO, None, |a| {
        arithmetic(Op::Subtract, &a[1], &a[0])
    });
    table.add("multiply", TWO, None, |a| {
        arithmetic(Op::Multiply, &a[1], &a[0])
    });
    table.add("divide", TWO, None, |a| {
        arithmetic(Op::Divide, &a[1], &a[0])
    });
    table.add("modulo", TWO, None, |a| {
        arithmetic(Op::Modulo, &a[1], &a[0])
    });
    table.add("minimum", TWO, None, |a| {
        arithmetic(Op::Minimum, &a[1], &a[0])
    });
    table.add("maximum", TWO, None, |a| {
        arithmetic(Op::Maximum, &a[1], &a[0])
    });
}

/// consul-template's `%q (%T)` of an operand it cannot use.
fn unknown(op: Op, value: &Value) -> String {
    let shown = sprintf("%q", std::slice::from_ref(value));
    let shown = match value {
        Value::Str(_) => shown,
        Value::NoValue | Value::Nil => "<invalid reflect.Value>".to_owned(),
        _ => format!(
            "%!q({}={})",
            value.type_name(),
            super::super::fmt::print(value)
        ),
    };
    let type_name = match value {
        Value::NoValue | Value::Nil => "<nil>",
        v => v.type_name(),
    };
    format!("{}: unknown type for {shown} ({type_name})", op.name())
}

const DIVIDE_BY_ZERO: &str = "runtime error: integer divide by zero";

/// The integer arithmetic of one Go integer type: wrapping like Go, and
/// Go's panic text on a zero divisor.
macro_rules! integer_op {
    ($name:ident, $int:ty) => {
        fn $name(op: Op, a: $int, b: $int) -> Result<$int, String> {
            Ok(match op {
                Op::Add => a.wrapping_add(b),
                Op::Subtract => a.wrapping_sub(b),
                Op::Multiply => a.wrapping_mul(b),
                Op::Divide => a.checked_div(b).ok_or(DIVIDE_BY_ZERO)?,
                Op::Modulo => a.checked_rem(b).ok_or(DIVIDE_BY_ZERO)?,
                Op::Minimum => a.min(b),
                Op::Maximum => a.max(b),
            })
        }
    };
}

integer_op!(ints, i64);
integer_op!(uints, u64);

fn floats(op: Op, a: f64, b: f64) -> f64 {
    match op {
        Op::Add => a + b,
        Op::Subtract => a - b,
        Op::Multiply => a * b,
        Op::Divide => a / b,
        Op::Modulo => unreachable!("modulo refuses floats first"),
        Op::Minimum => {
            if a < b {
                a
            } else {
                b
            }
        }
        Op::Maximum => {
            if a > b {
                a
            } else {
                b
            }
        }
    }
}

/// `a op b`.
fn arithmetic<'a>(op: Op, a: &Value<'a>, b: &Value<'a>) -> Result<Value<'a>, String> {
    let is_number = |v: &Value| matches!(v, Value::Int(_) | Value::Uint(_) | Value::Float(_));
    if !is_number(a) || matches!(op, Op::Modulo) && matches!(a, Value::Float(_)) {
        return Err(unknown(op, a));
    }
    if !is_number(b) || matches!(op, Op::Modulo) && matches!(b, Value::Float(_)) {
        return Err(unknown(op, b));
    }
    Ok(match (a, b) {
        (&Value::Int(x), &Value::Int(y)) => Value::Int(ints(op, x, y)?),
        (&Value::Int(x), &Value::Uint(y)) => Value::Int(ints(op, x, y as i64)?),
        (&Value::Uint(x), &Value::Int(y)) => Value::Int(ints(op, x as i64, y)?),
        (&Value::Uint(x), &Value::Uint(y)) => Value::Uint(uints(op, x, y)?),
        (&Value::Float(x), &Value::Int(y)) => Value::Float(floats(op, x, y as f64)),
        (&Value::Float(x), &Value::Uint(y)) => Value::Float(floats(op, x, y as f64)),
        (&Value::Int(x), &Value::Float(y)) => Value::Float(floats(op, x as f64, y)),
        (&Value::Uint(x), &Value::Float(y)) => Value::Float(floats(op, x as f64, y)),
        (&Value::Float(x), &Value::Float(y)) => Value::Float(floats(op, x, y)),
        _ => unreachable!("both operands are numbers"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::gotmpl::fmt::print;

    fn call(name: &str, b: Value<'static>, a: Value<'static>) -> Result<String, String> {
        let mut table = Table::default();
        register(&mut table);
        (table.get(name).unwrap().run)(vec![b, a]).map(|v| print(&v))
    }

    #[test]
    fn operands_are_reversed() {
        let cases = [
            ("subtract", Value::Int(2), Value::Int(10), "8"),
            ("divide", Value::Int(2), Value::Int(10), "5"),
            ("modulo", Value::Int(3), Value::Int(10), "1"),
            ("add", Value::Float(0.5), Value::Int(1), "1.5"),
            ("multiply", Value::Uint(3), Value::Uint(4), "12"),
            ("minimum", Value::Int(3), Value::Int(10), "3"),
            ("maximum", Value::Int(3), Value::Int(10), "10"),
        ];
        for (name, a, b, want) in cases {
            assert_eq!(call(name, a, b), Ok(want.into()), "{name}");
        }
    }

    #[test]
    fn bad_operands_are_named() {
        assert_eq!(
            call("add", Value::str("x"), Value::Int(1)),
            Err("add: unknown type for \"x\" (string)".into())
        );
        assert_eq!(
            call("divide", Value::Int(0), Value::Int(1)),
            Err(DIVIDE_BY_ZERO.into())
        );
        assert!(call("modulo", Value::Float(1.0), Value::Int(1)).is_err());
    }
}
