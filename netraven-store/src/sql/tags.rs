//! Tags, and the tag lists of devices and credentials.

use crate::sql::SqlStore;
use crate::sql::dialect::{Dialect, SqlRow};
use crate::sql::query::{Sql, Where, dedup};
use netraven_core::error::{Error, Result};
use netraven_core::model::{Page, Paged, Tag, TagId, validate_name};
use netraven_core::store::{TagStore, check};
use std::collections::HashMap;

/// Which join table a tag list belongs to.
#[derive(Clone, Copy)]
pub(super) enum Tagged {
    Device,
    Credential,
}

impl Tagged {
    fn table(self) -> &'static str {
        match self {
            Tagged::Device => "device_tags",
            Tagged::Credential => "credential_tags",
        }
    }
    fn owner(self) -> &'static str {
        match self {
            Tagged::Device => "device_id",
            Tagged::Credential => "credential_id",
        }
    }
}

/// Replaces the tags of a device or credential, creating unknown tags.
pub(super) async fn set_tags<D: Dialect>(
    tx: &mut D::Tx,
    kind: Tagged,
    owner: i64,
    tags: &[String],
) -> Result<()> {
    let (table, col) = (kind.table(), kind.owner());
    D::tx_execute(
        tx,
        Sql::new(format!("DELETE FROM {table} WHERE {col} = $1")).bind(owner),
    )
    .await?;
    for (pos, name) in dedup(tags).into_iter().enumerate() {
        validate_name("tag", &name)?;
        D::tx_execute(
            tx,
            Sql::new("INSERT INTO tags (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
                .bind(name.clone()),
        )
        .await?;
        D::tx_execute(
            tx,
            Sql::new(format!(
                "INSERT INTO {table} ({col}, tag_id, position) \
                 SELECT $1, id, $3 FROM tags WHERE name = $2"
            ))
            .bind(owner)
            .bind(name)
            .bind(pos as i64),
        )
        .await?;
    }
    Ok(())
}

/// Tag names of several devices or credentials, in their stored order.
pub(super) async fn load_tags<D: Dialect>(
    db: &D,
    kind: Tagged,
    owners: &[i64],
) -> Result<HashMap<i64, Vec<String>>> {
    let mut out: HashMap<i64, Vec<String>> = HashMap::new();
    if owners.is_empty() {
        return Ok(out);
    }
    let (table, col) = (kind.table(), kind.owner());
    let sql = format!(
        "SELECT x.{col} AS owner, t.name AS name FROM {table} x JOIN tags t ON t.id = x.tag_id \
         WHERE {} ORDER BY x.{col}, x.position",
        D::in_list(&format!("x.{col}"), "$1")
    );
    let rows = db
        .fetch_all(Sql::new(sql).bind(crate::sql::query::Arg::Ids(owners.to_vec())))
        .await?;
    for r in &rows {
        out.entry(r.i64("owner")?)
            .or_default()
            .push(r.text("name")?);
    }
    Ok(out)
}

fn tag_row(r: &impl SqlRow) -> Result<Tag> {
    Ok(Tag {
        id: r.i64("id")?,
        name: r.text("name")?,
        description: r.opt_text("description")?,
        zone: r.opt_text("zone")?,
    })
}

#[async_trait::async_trait]
impl<D: Dialect> TagStore for SqlStore<D> {
    async fn create_tag(&self, tag: &Tag) -> Result<Tag> {
        check::tag(tag)?;
        let row = self
            .db
            .fetch_one(
                Sql::new(
                    "INSERT INTO tags (name, description, zone) VALUES ($1, $2, $3) \
                     RETURNING id, name, description, zone",
                )
                .bind(&tag.name)
                .bind(&tag.description)
                .bind(&tag.zone),
                "inserted tag".into(),
            )
            .await?;
        tag_row(&row)
    }

    async fn get_tag(&self, id: TagId) -> Result<Tag> {
        let row = self
            .db
            .fetch_one(
                Sql::new("SELECT id, name, description, zone FROM tags WHERE id = $1").bind(id),
                format!("tag {id}"),
            )
            .await?;
        tag_row(&row)
    }

    async fn update_tag(&self, tag: &Tag) -> Result<Tag> {
        check::tag(tag)?;
        let row = self
            .db
            .fetch_one(
                Sql::new(
                    "UPDATE tags SET name = $2, description = $3, zone = $4 WHERE id = $1 \
                     RETURNING id, name, description, zone",
                )
                .bind(tag.id)
                .bind(&tag.name)
                .bind(&tag.description)
                .bind(&tag.zone),
                format!("tag {}", tag.id),
            )
            .await?;
        tag_row(&row)
    }

    async fn delete_tag(&self, id: TagId) -> Result<()> {
        let n = self
            .db
            .execute(Sql::new("DELETE FROM tags WHERE id = $1").bind(id))
            .await?;
        if n == 0 {
            return Err(Error::not_found(format!("tag {id}")));
        }
        Ok(())
    }

    async fn list_tags(&self, page: Page) -> Result<Paged<Tag>> {
        let w = Where::default();
        let total = self.db.count(w.count("tags")).await?;
        let rows = self
            .db
            .fetch_all(w.page(
                "SELECT id, name, description, zone FROM tags",
                "name, id",
                page,
            ))
            .await?;
        let items = rows.iter().map(tag_row).collect::<Result<Vec<_>>>()?;
        Ok(Paged::new(items, total, page))
    }
}
