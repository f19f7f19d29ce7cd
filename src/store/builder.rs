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
            row(
                &mut Row {
                    st: self,
                    first: true,
                },
                item,
            );
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

/// The statement text for the backend behind `conn`: written for SQLite, rewritten for
/// PostgreSQL by [`to_postgres`].
pub(crate) fn for_conn(
    conn: &sqlx::AnyConnection,
    sql: &'static str,
) -> sqlx::AssertSqlSafe<std::borrow::Cow<'static, str>> {
    for_backend(conn.backend_name() == POSTGRES, sql)
}

pub(crate) const POSTGRES: &str = "PostgreSQL";

pub(crate) fn for_backend(
    postgres: bool,
    sql: &'static str,
) -> sqlx::AssertSqlSafe<std::borrow::Cow<'static, str>> {
    sqlx::AssertSqlSafe(if postgres {
        std::borrow::Cow::Owned(to_postgres(sql))
    } else {
        std::borrow::Cow::Borrowed(sql)
    })
}

/// The few SQLite spellings the store uses, in PostgreSQL's words. Every statement is written
/// once; these are the only differences, each a fixed token (a test checks that each rewrite
/// applies where it is meant to and nowhere else).
const REWRITES: &[(&str, &str)] = &[
    // A JSON array of rows bound as one value, unpacked in order.
    (
        "FROM jsonb_each($1)",
        "FROM jsonb_array_elements($1::jsonb)",
    ),
    (
        "FROM json_each($1)",
        "FROM jsonb_array_elements_text($1::jsonb)",
    ),
    // Packing rows into one JSON value per row, or per page.
    ("json_array(", "json_build_array("),
    ("SELECT json_group_array(", "SELECT COALESCE(json_agg("),
    (
        "), count(*), max(h.host_id)",
        " ORDER BY h.host_id)::text, '[]'), count(*), max(h.host_id)",
    ),
    // A packed value selected as a column: JSON as text, which is what the SQLite side returns.
    ("/*text*/", "::text"),
    ("instr(", "strpos("),
    // SQLite's way to fix the join order; PostgreSQL's CROSS JOIN takes no ON (and its page
    // order comes from json_agg's ORDER BY).
    ("CROSS JOIN hosts h ON", "JOIN hosts h ON"),
];

pub(crate) fn to_postgres(sql: &str) -> String {
    let mut out = sql.to_owned();
    for (from, to) in REWRITES {
        if out.contains(from) {
            out = out.replace(from, to);
        }
    }
    out
}
