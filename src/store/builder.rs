//! A statement with a variable number of bound values, numbered `$1, $2, …`: the placeholder
//! form both SQLite and PostgreSQL read (sqlx's own builder writes `?` for the Any driver,
//! which PostgreSQL rejects).

use sqlx::any::AnyArguments;
use sqlx::{Any, Arguments, Encode, Type};

pub(crate) struct Statement {
    text: String,
    args: AnyArguments,
    n: usize,
    error: Option<String>,
}

impl Statement {
    pub(crate) fn new(head: &str) -> Self {
        Self {
            text: head.to_owned(),
            args: AnyArguments::default(),
            n: 0,
            error: None,
        }
    }

    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.text.push_str(sql);
        self
    }

    /// Appends `$n` and binds `v` to it.
    pub(crate) fn bind<T>(&mut self, v: T) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any>,
    {
        self.n += 1;
        self.text.push('$');
        self.text.push_str(&self.n.to_string());
        if let Err(e) = self.args.add(v) {
            self.error.get_or_insert(e.to_string());
        }
        self
    }

    /// `v1, v2, …` bound one by one (for `IN (…)`).
    pub(crate) fn list<T, I>(&mut self, values: I) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any>,
        I: IntoIterator<Item = T>,
    {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(v);
        }
        self
    }

    /// `VALUES (…), (…)`: one row per item, its values bound by `row`.
    pub(crate) fn values<I, F>(&mut self, items: I, mut row: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(&mut Row<'_>, I::Item),
    {
        self.text.push_str("VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.text.push('(');
            row(&mut Row { st: self, first: true }, item);
            self.text.push(')');
        }
        self
    }

    pub(crate) fn query(
        self,
    ) -> Result<sqlx::query::Query<'static, Any, AnyArguments>, sqlx::Error> {
        if let Some(e) = self.error {
            return Err(sqlx::Error::Encode(e.into()));
        }
        Ok(sqlx::query_with(sqlx::AssertSqlSafe(self.text), self.args))
    }
}

/// One row of [`Statement::values`].
pub(crate) struct Row<'a> {
    st: &'a mut Statement,
    first: bool,
}

impl Row<'_> {
    pub(crate) fn bind<T>(&mut self, v: T) -> &mut Self
    where
        T: for<'q> Encode<'q, Any> + Type<Any>,
    {
        if !self.first {
            self.st.text.push_str(", ");
        }
        self.first = false;
        self.st.bind(v);
        self
    }
}
