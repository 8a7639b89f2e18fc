//! Policy errors a person reads: every one names the file, line and column, says what is wrong
//! and hints at the fix. [`PolicyErrors`] collects all of them so `portcullis check` shows every
//! problem at once.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// What went wrong, as a type the caller can match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyErrorKind {
    /// The directory or a file could not be read, or holds no policy files.
    Io,
    /// Not valid YAML, or a key or value of the wrong shape (unknown keys included).
    Yaml,
    /// Well-formed YAML that breaks a rule of the language (bad glob, bad upstream, ...).
    Invalid,
    /// A CEL expression that does not parse or references unknown variables or functions.
    Cel,
    /// Two definitions collide: duplicate route names, ambiguous routes.
    Conflict,
}

/// One error at one place in one policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyError {
    pub kind: PolicyErrorKind,
    pub file: PathBuf,
    /// 1-based; 0 when the error concerns the whole file or directory.
    pub line: u64,
    /// 1-based; 0 when unknown.
    pub column: u64,
    pub message: String,
    pub hint: Cow<'static, str>,
}

impl PolicyError {
    pub(crate) fn new(
        kind: PolicyErrorKind,
        at: &Pos,
        message: impl Into<String>,
        hint: impl Into<Cow<'static, str>>,
    ) -> Self {
        PolicyError {
            kind,
            file: at.file.to_path_buf(),
            line: at.line,
            column: at.column,
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column.max(1))?;
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {}

/// Every error found while loading a policy set; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, PolicyError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first error, one line, for a log field or a status page.
    pub fn first_line(&self) -> String {
        match self.0.first() {
            Some(e) if e.line > 0 => {
                format!(
                    "{}:{}:{}: {}",
                    e.file.display(),
                    e.line,
                    e.column.max(1),
                    e.message
                )
            }
            Some(e) => format!("{}: {}", e.file.display(), e.message),
            None => String::new(),
        }
    }

    pub(crate) fn single(error: PolicyError) -> Self {
        PolicyErrors(vec![error])
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for error in &self.0 {
            writeln!(f, "{error}")?;
        }
        let n = self.0.len();
        write!(f, "{n} policy error{}", if n == 1 { "" } else { "s" })
    }
}

impl std::error::Error for PolicyErrors {}

impl<'a> IntoIterator for &'a PolicyErrors {
    type Item = &'a PolicyError;
    type IntoIter = std::slice::Iter<'a, PolicyError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A place in a policy file, carried from parsing to every compiled rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pos {
    pub file: std::sync::Arc<Path>,
    pub line: u64,
    pub column: u64,
}

impl Pos {
    pub(crate) fn file(file: &std::sync::Arc<Path>) -> Self {
        Pos {
            file: file.clone(),
            line: 0,
            column: 0,
        }
    }

    pub(crate) fn at(file: &std::sync::Arc<Path>, loc: serde_saphyr::Location) -> Self {
        Pos {
            file: file.clone(),
            line: loc.line(),
            column: loc.column(),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.file.display(),
            self.line,
            self.column.max(1)
        )
    }
}
