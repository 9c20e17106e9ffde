//! The conditions of a required attestation: CEL expressions (the language of Kubernetes'
//! `ValidatingAdmissionPolicy` and CRD validation rules) over a verified in-toto statement,
//! through cel-rust's interpreter (docs/contract.md §3, attestations).
//!
//! An expression is compiled once, when the policy is: what cel-rust can check without a type
//! checker (it has none) is checked then, so that a mistake is a status problem with its field
//! path and never a failure at admission:
//! - its length, at most [`MAX_EXPRESSION_BYTES`];
//! - its syntax, with the parser's nesting bounded at [`MAX_NESTING`] (cel-rust's parser
//!   refuses deeper input before it recurses further);
//! - every name it reads is one of [`VARIABLES`], a variable a macro binds (`x` in
//!   `subject.all(x, ...)`), or a type name (`string`, `int`...). Field names, function names
//!   and types are not checked: `predicate` is whatever the producer wrote, and a call of an
//!   unknown function, a missing field or a wrong type is an error at evaluation, which
//!   refuses the image and says so.
//!
//! Evaluation is bounded, as Kubernetes bounds its CEL by cost: every step of a comprehension
//! (`all`, `exists`, `exists_one`, `map`, `filter`) counts, and the evaluation stops with an
//! error past [`Limits::steps`] steps or past its deadline, both checked at each step; what an
//! expression does between two steps is bounded by its length and by the size of its input
//! (a statement is at most the registry client's payload limit, 1 MiB). The check is a call
//! that the compiler adds to each comprehension's step (see [`meter`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedEntryExpr, IdedExpr, operators,
};
use cel::{Context, Env, ExecutionError, Value};

/// The longest expression accepted, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 4096;

/// The deepest nesting of an expression the parser accepts (parentheses, operators, calls).
pub const MAX_NESTING: u16 = 32;

/// The names an expression may read, besides those its macros bind and type names.
pub const VARIABLES: [&str; 6] = [
    "predicate",
    "predicateType",
    "subject",
    "image",
    "signer",
    "now",
];

/// The type names CEL lets an expression read as values (`type(x) == string`).
const TYPE_NAMES: [&str; 11] = [
    "bool",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "optional_type",
];

/// The function the compiler calls at each step of a comprehension; its name cannot be
/// written in CEL source (an identifier does not start with `@`).
const METER: &str = "@image_policy_step";

/// The bounds on one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most comprehension steps, all comprehensions of the expression together.
    pub steps: u64,
    /// The longest an evaluation may take.
    pub time: Duration,
}

impl Limits {
    /// What admission allows each condition: a million steps (an SBOM of twenty thousand
    /// packages, each looked at fifty times) and 100 ms.
    pub const ADMISSION: Limits = Limits {
        steps: 1_000_000,
        time: Duration::from_millis(100),
    };
}

/// Why an expression does not compile. The words end up in the policy's status after the
/// field path of the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// Nothing is written.
    #[error("the expression is empty")]
    Empty,
    /// Over [`MAX_EXPRESSION_BYTES`].
    #[error("the expression is {0} bytes long, over the limit of {MAX_EXPRESSION_BYTES}")]
    TooLong(usize),
    /// Not CEL, or nested deeper than [`MAX_NESTING`]; cel-rust's words.
    #[error("the expression is not valid CEL: {0}")]
    Syntax(String),
    /// A name that is no variable.
    #[error(
        "the expression reads {0:?}, which is not a variable: use predicate, predicateType, subject, image, signer or now"
    )]
    UnknownVariable(String),
}

/// Why an evaluation did not give true or false.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvaluationError {
    /// An error of the expression on this input: a missing field, a wrong type, an unknown
    /// function; cel-rust's words, cut to 200 characters.
    #[error("{0}")]
    Failed(String),
    /// A value that is not a boolean.
    #[error("it evaluates to a {0}, not to true or false")]
    NotABool(String),
    /// Past [`Limits::steps`].
    #[error("it takes more than {0} comprehension steps")]
    TooManySteps(u64),
    /// Past [`Limits::time`] or the deadline of the image's verification.
    #[error("it did not finish in time")]
    TimedOut,
}

/// One compiled condition.
#[derive(Debug, Clone)]
pub struct Condition {
    /// The expression, as written.
    pub expression: String,
    /// The message a denial gives when it is false, as written.
    pub message: Option<String>,
    program: Arc<IdedExpr>,
}

impl Condition {
    /// Compiles `expression`, checking what can be checked before any input is known.
    pub fn compile(expression: &str, message: Option<&str>) -> Result<Condition, CompileError> {
        if expression.trim().is_empty() {
            return Err(CompileError::Empty);
        }
        if expression.len() > MAX_EXPRESSION_BYTES {
            return Err(CompileError::TooLong(expression.len()));
        }
        let mut program = parse(expression)?;
        unknown_name(&program, &mut Vec::new())
            .map_or(Ok(()), |name| Err(CompileError::UnknownVariable(name)))?;
        meter(&mut program);
        Ok(Condition {
            expression: expression.to_owned(),
            message: message.map(str::to_owned),
            program: Arc::new(program),
        })
    }

    /// Whether the condition holds for `variables`, within `limits` and before `deadline`.
    pub fn evaluate(
        &self,
        variables: &Variables,
        limits: Limits,
        deadline: Instant,
    ) -> Result<bool, EvaluationError> {
        let deadline = deadline.min(Instant::now() + limits.time);
        let steps = Arc::new(AtomicU64::new(0));
        let mut context = Context::with_env(env().clone());
        for (name, value) in variables.values() {
            context.add_variable_from_value(*name, value.clone());
        }
        let counted = Arc::clone(&steps);
        let step = move || -> Result<Value, ExecutionError> {
            let taken = counted.fetch_add(1, Ordering::Relaxed) + 1;
            if taken > limits.steps || Instant::now() > deadline {
                return Err(ExecutionError::function_error(METER, "stopped"));
            }
            Ok(Value::Bool(true))
        };
        // The name cannot clash: no overload of the standard environment starts with `@`.
        context
            .add_function(METER, step)
            .map_err(|e| EvaluationError::Failed(e.to_string()))?;
        let result = context.resolve(&self.program);
        let taken = steps.load(Ordering::Relaxed);
        match result {
            Ok(Value::Bool(holds)) => Ok(holds),
            Ok(other) => Err(EvaluationError::NotABool(other.type_of().to_string())),
            Err(_) if taken > limits.steps => Err(EvaluationError::TooManySteps(limits.steps)),
            Err(_) if Instant::now() > deadline => Err(EvaluationError::TimedOut),
            Err(e) => Err(EvaluationError::Failed(cut(&one_line(&e.to_string())))),
        }
    }
}

/// `expression` parsed, on a thread of its own ([`on_large_stack`]).
fn parse(expression: &str) -> Result<IdedExpr, CompileError> {
    on_large_stack(|| {
        env()
            .parser()
            .max_recursion_depth(MAX_NESTING)
            .parse(expression)
            .map_err(|e| CompileError::Syntax(one_line(&e.to_string())))
    })
    .unwrap_or_else(|why| Err(CompileError::Syntax(why.to_string())))
}

/// Why CEL could not run on a thread of its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThreadError {
    /// The operating system gave no thread.
    #[error("no thread to run it on: {0}")]
    NoThread(String),
    /// The work panicked (a defect of cel-rust: it is never expected).
    #[error("it failed")]
    Panicked,
}

/// `work` run on a thread of its own with [`STACK_BYTES`] of stack. cel-rust's parser (ANTLR's) and interpreter recurse for
/// each level of nesting: [`MAX_NESTING`] levels take more than the 2 MiB of a thread's
/// default stack in a debug build, and a stack overflow aborts the process. Conditions are
/// compiled and evaluated only here.
pub fn on_large_stack<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, ThreadError> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("cel".into())
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, work)
            .map_err(|e| ThreadError::NoThread(e.to_string()))?
            .join()
            .map_err(|_| ThreadError::Panicked)
    })
}

/// The stack of the threads CEL runs on: reserved, and touched only as deep as it goes.
const STACK_BYTES: usize = 32 << 20;

/// The values of [`VARIABLES`] for one verified statement.
#[derive(Debug, Clone)]
pub struct Variables {
    values: [(&'static str, Value); 6],
}

/// Who signed a statement, as `signer` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignerFacts {
    /// A public key of the policy, by name: `{name}`.
    Key {
        /// `spec.verification.keys[].name`.
        name: String,
    },
    /// A keyless identity of the policy, by name, with its certificate's identity:
    /// `{name, issuer, subject}`.
    Keyless {
        /// `spec.verification.keys[].name`.
        name: String,
        /// The certificate's OIDC issuer.
        issuer: String,
        /// The certificate's subject (URI or email SAN).
        subject: String,
    },
}

impl SignerFacts {
    /// The signer's name in the policy.
    pub fn name(&self) -> &str {
        match self {
            SignerFacts::Key { name } | SignerFacts::Keyless { name, .. } => name,
        }
    }
}

impl Variables {
    /// The variables of `statement` (an in-toto statement as JSON) about `image` (as written)
    /// at `digest`, signed by `signer`, evaluated at `now`.
    pub fn new(
        statement: &serde_json::Value,
        (image, digest): (&str, &str),
        signer: &SignerFacts,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Variables {
        let field = |name: &str| statement.get(name).map_or(Value::Null, json);
        let text = |pairs: &[(&str, &str)]| {
            let map: std::collections::HashMap<String, Value> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
                .collect();
            Value::from(map)
        };
        let signer = match signer {
            SignerFacts::Key { name } => text(&[("name", name)]),
            SignerFacts::Keyless {
                name,
                issuer,
                subject,
            } => text(&[("name", name), ("issuer", issuer), ("subject", subject)]),
        };
        Variables {
            values: [
                ("predicate", field("predicate")),
                ("predicateType", field("predicateType")),
                ("subject", field("subject")),
                ("image", text(&[("reference", image), ("digest", digest)])),
                ("signer", signer),
                ("now", Value::Timestamp(now.fixed_offset())),
            ],
        }
    }

    fn values(&self) -> impl Iterator<Item = &(&'static str, Value)> {
        self.values.iter()
    }
}

/// The environment every condition is compiled and evaluated in: CEL's standard library and
/// macros.
fn env() -> &'static Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| Arc::new(Env::stdlib()))
}

/// A JSON value as CEL reads it, as Kubernetes does: an integer is an `int` (a `uint` beyond
/// it), any other number a `double`.
fn json(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::Int(i),
            (None, Some(u), _) => Value::UInt(u),
            (None, None, f) => Value::Float(f.unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => Value::List(Arc::new(items.iter().map(json).collect())),
        serde_json::Value::Object(fields) => {
            let map: std::collections::HashMap<String, Value> =
                fields.iter().map(|(k, v)| (k.clone(), json(v))).collect();
            Value::from(map)
        }
    }
}

/// The first name `expr` reads that is neither a variable, nor bound by an enclosing
/// comprehension (`bound`), nor a type name.
fn unknown_name(expr: &IdedExpr, bound: &mut Vec<String>) -> Option<String> {
    match &expr.expr {
        Expr::Ident(name) => {
            let known = name.starts_with('@')
                || VARIABLES.contains(&name.as_str())
                || TYPE_NAMES.contains(&name.as_str())
                || bound.iter().any(|b| b == name);
            (!known).then(|| name.clone())
        }
        Expr::Call(call) => {
            first_unknown(call.target.as_deref().into_iter().chain(&call.args), bound)
        }
        Expr::Select(select) => unknown_name(&select.operand, bound),
        Expr::List(list) => first_unknown(&list.elements, bound),
        Expr::Map(map) => first_unknown(map.entries.iter().flat_map(entry), bound),
        Expr::Struct(strct) => first_unknown(strct.entries.iter().flat_map(entry), bound),
        Expr::Comprehension(c) => comprehension_unknown(c, bound),
        Expr::Literal(_) | Expr::Unspecified => None,
    }
}

fn first_unknown<'a>(
    exprs: impl IntoIterator<Item = &'a IdedExpr>,
    bound: &mut Vec<String>,
) -> Option<String> {
    exprs.into_iter().find_map(|e| unknown_name(e, bound))
}

fn entry(entry: &IdedEntryExpr) -> Vec<&IdedExpr> {
    match &entry.expr {
        EntryExpr::StructField(field) => vec![&field.value],
        EntryExpr::MapEntry(pair) => vec![&pair.key, &pair.value],
    }
}

/// The first unknown name of a comprehension: its range and initial value are read outside
/// it, its condition and step with its variables bound, its result with its accumulator.
fn comprehension_unknown(c: &ComprehensionExpr, bound: &mut Vec<String>) -> Option<String> {
    let outside = unknown_name(&c.iter_range, bound).or_else(|| unknown_name(&c.accu_init, bound));
    if outside.is_some() {
        return outside;
    }
    let depth = bound.len();
    bound.push(c.accu_var.clone());
    let result = unknown_name(&c.result, bound);
    bound.push(c.iter_var.clone());
    bound.extend(c.iter_var2.iter().cloned());
    let inside = result
        .or_else(|| unknown_name(&c.loop_cond, bound))
        .or_else(|| unknown_name(&c.loop_step, bound));
    bound.truncate(depth);
    inside
}

/// Adds a call of [`METER`] to the step of every comprehension of `expr`, where the
/// interpreter evaluates it once per element: the loop condition (`all`, `exists`), or, where
/// the condition is a constant (`exists_one`, `map`, `filter`, which cel-rust runs faster
/// then), the first thing the step evaluates: `@image_policy_step() ? x : null` in place of
/// `x`, so that the step's shape, which the interpreter recognizes, is kept.
fn meter(expr: &mut IdedExpr) {
    match &mut expr.expr {
        Expr::Comprehension(c) => {
            for part in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                meter(part);
            }
            if matches!(c.loop_cond.expr, Expr::Literal(_)) {
                guard_first_evaluated(&mut c.loop_step);
            } else {
                guard(&mut c.loop_cond);
            }
        }
        Expr::Call(call) => {
            if let Some(target) = call.target.as_deref_mut() {
                meter(target);
            }
            call.args.iter_mut().for_each(meter);
        }
        Expr::Select(select) => meter(&mut select.operand),
        Expr::List(list) => list.elements.iter_mut().for_each(meter),
        Expr::Map(map) => map.entries.iter_mut().for_each(|e| entry_mut(e, meter)),
        Expr::Struct(strct) => strct.entries.iter_mut().for_each(|e| entry_mut(e, meter)),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

fn entry_mut(entry: &mut IdedEntryExpr, f: fn(&mut IdedExpr)) {
    match &mut entry.expr {
        EntryExpr::StructField(field) => f(&mut field.value),
        EntryExpr::MapEntry(pair) => {
            f(&mut pair.key);
            f(&mut pair.value);
        }
    }
}

/// Guards, in a comprehension's step, the part evaluated first on every element: the guard of
/// `g ? a : b` (`exists_one`, `filter`, a filtered `map`), the element of `@result + [e]`
/// (`map`), else the step itself.
fn guard_first_evaluated(step: &mut IdedExpr) {
    let Expr::Call(call) = &mut step.expr else {
        return guard(step);
    };
    let conditional = call.func_name == operators::CONDITIONAL && call.args.len() == 3;
    let append = call.func_name == operators::ADD && call.args.len() == 2;
    if conditional && let Some(first) = call.args.first_mut() {
        return guard(first);
    }
    if append
        && let Some(IdedExpr {
            expr: Expr::List(list),
            ..
        }) = call.args.get_mut(1)
        && let Some(element) = list.elements.first_mut()
    {
        return guard(element);
    }
    guard(step)
}

/// `expr` made `@image_policy_step() ? expr : null`: the same value, after a step is counted.
fn guard(expr: &mut IdedExpr) {
    let inner = std::mem::take(expr);
    let id = inner.id;
    let node = |expr| IdedExpr { id, expr };
    let call = |func_name: &str, args| {
        node(Expr::Call(CallExpr {
            func_name: func_name.to_owned(),
            target: None,
            args,
        }))
    };
    let step = call(METER, Vec::new());
    let null = node(Expr::Literal(cel::common::ast::LiteralValue::Null));
    *expr = call(operators::CONDITIONAL, vec![step, inner, null]);
}

/// cel-rust's multi-line error (with its caret under the source) as one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('|'))
        .collect::<Vec<_>>()
        .join(" ")
}

/// At most 200 characters of `text`.
fn cut(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests;
