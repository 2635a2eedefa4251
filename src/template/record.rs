//! What one render read: every dependency it looked up, and the ones whose
//! data was not there yet. Both engines record through [`Record::lookup`],
//! so "the template is the query" means the same thing in each: a lookup
//! without data returns nothing, the render carries on with an empty value,
//! and the runner writes nothing until the missing data arrives.

use std::collections::BTreeSet;

use std::sync::Arc;

use super::snapshot::Snapshot;
use crate::consul::{Data, Dependency};

/// The dependencies one render used, and the subset it still waits for.
#[derive(Debug, Default)]
pub struct Record {
    pub used: BTreeSet<Dependency>,
    pub missing: BTreeSet<Dependency>,
}

impl Record {
    /// Records `dependency` as used and returns its data in `snapshot`, or
    /// `None` (recorded as missing) when its data has not arrived.
    pub fn lookup<'s>(
        &mut self,
        snapshot: &'s Snapshot,
        dependency: Dependency,
    ) -> Option<&'s Arc<Data>> {
        let data = snapshot.shared(&dependency);
        if data.is_none() {
            self.missing.insert(dependency.clone());
        }
        self.used.insert(dependency);
        data
    }

    /// Keeps the render waiting on a dependency whose data arrived but is not
    /// enough yet: a `key` that does not exist, a `safeLs` prefix that is empty.
    pub fn wait_for(&mut self, dependency: Dependency) {
        self.used.insert(dependency.clone());
        self.missing.insert(dependency);
    }
}
