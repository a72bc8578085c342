//! The pages of linear memory that calls write, learned from the calls themselves, so that
//! the warm pool copies them in its own thread before a call takes the instance.
//!
//! A fresh instance shares the snapshot's pages copy-on-write: the first write to each page
//! is a page fault that copies it, and flushes the TLB of every core the process runs on. A
//! call of the user guide's example wrote about 330 pages in 176 separate runs, a fifth of its
//! time. When a used instance is dropped, wasmtime resets its slot by copying back only the
//! pages it wrote and keeps them mapped for the next instance, but only for the first 32 runs
//! of written pages; the rest are unmapped and fault again in the next call.
//!
//! So the pool learns which pages recent calls wrote (from `/proc/self/pagemap`, as each used
//! instance is dropped), plans them as a few runs (joining runs across their smallest gaps,
//! within a memory budget), and writes each planned page of a new instance with its own
//! content before handing it out. The copies are made off the call's path, and once a slot's
//! planned pages are in fewer than 32 runs, wasmtime keeps them mapped from one instance to
//! the next: they are neither faulted nor unmapped again (where Linux has `PAGEMAP_SCAN`,
//! 6.7 and later; elsewhere they are unmapped after each call, and copied ahead again). The
//! instance's content is unchanged.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

/// How much of a memory is looked at: where the snapshot's image and a call's usual heap
/// are, and as much as wasmtime keeps mapped in a slot.
const MOST_OBSERVED_BYTES: usize = 64 << 20;
/// Most bytes a plan covers: the private memory each ready instance holds for it.
const MOST_PLANNED_BYTES: usize = 4 << 20;
/// Most runs a plan has, below the 32 runs of written pages wasmtime keeps mapped in a slot,
/// leaving room for a call's own writes.
const MOST_RUNS: usize = 24;
/// What a page's heat gains when an observed call wrote it; it loses an eighth of itself on
/// every observed call, so a page written by every call settles at eight times this.
const HEAT_GAIN: u16 = 32;
/// The heat from which a page is planned: written by about half of the recent calls, or by
/// the last six in a row.
const HOT: u16 = 128;
/// Observed calls between two plans.
const PLAN_EVERY: u32 = 8;
/// Finished calls per observed one: reading the page map costs about 0.1 ms.
const OBSERVE_EVERY: u32 = 4;
/// Bytes of one `/proc/self/pagemap` entry.
const PAGEMAP_ENTRY: usize = 8;
/// In a pagemap entry: the page is present.
const PRESENT: u64 = 1 << 63;
/// In a pagemap entry: the page is a file page or shared (here: still the snapshot's).
const FILE_OR_SHARED: u64 = 1 << 61;
/// In a pagemap entry: the page is mapped only once (not the shared zero page).
const EXCLUSIVE: u64 = 1 << 56;

/// What the pool has learned of the pages calls write, and the plan made from it.
pub(crate) struct WorkingSet {
    page_size: usize,
    learned: Mutex<Learned>,
    /// Byte ranges of linear memory, in address order.
    plan: Mutex<Arc<[Range<usize>]>>,
}

#[derive(Default)]
struct Learned {
    /// Per page of linear memory: how much recent calls wrote it.
    heat: Vec<u16>,
    finished: u32,
    observed: u32,
}

impl WorkingSet {
    pub(crate) fn new() -> Self {
        Self {
            page_size: rustix::param::page_size(),
            learned: Mutex::default(),
            plan: Mutex::new(Arc::new([])),
        }
    }

    /// Learns which pages of a finished call's `memory` it wrote (for one call in
    /// [`OBSERVE_EVERY`]); called before its store is dropped (which resets them). Learns
    /// nothing where the page map cannot be read.
    pub(crate) fn observe(&self, memory: &[u8]) {
        let mut learned = lock(&self.learned);
        learned.finished = learned.finished.wrapping_add(1);
        if !learned.finished.is_multiple_of(OBSERVE_EVERY) {
            return;
        }
        let observed = &memory[..memory.len().min(MOST_OBSERVED_BYTES)];
        let Ok(written) = written_pages(observed, self.page_size) else {
            return;
        };
        if learned.heat.len() < written.len() {
            learned.heat.resize(written.len(), 0);
        }
        let unwritten = std::iter::repeat(false);
        for (heat, written) in learned
            .heat
            .iter_mut()
            .zip(written.into_iter().chain(unwritten))
        {
            *heat = *heat - *heat / 8 + if written { HEAT_GAIN } else { 0 };
        }
        learned.observed += 1;
        if learned.observed.is_multiple_of(PLAN_EVERY) {
            let runs = plan(
                &learned.heat,
                MOST_RUNS,
                MOST_PLANNED_BYTES / self.page_size,
            );
            let plan: Arc<[Range<usize>]> = runs
                .into_iter()
                .map(|pages| pages.start * self.page_size..pages.end * self.page_size)
                .collect();
            *lock(&self.plan) = plan;
        }
    }

    /// Writes each planned page of a fresh instance's `memory` with its own content, so that
    /// its copy is made now, by the caller, instead of by the call.
    pub(crate) fn touch(&self, memory: &mut [u8]) {
        let plan = lock(&self.plan).clone();
        for range in plan.iter() {
            let end = range.end.min(memory.len());
            for at in (range.start..end).step_by(self.page_size) {
                // `black_box` hides that the byte is unchanged, so the write is not elided.
                memory[at] = std::hint::black_box(memory[at]);
            }
        }
    }

    #[cfg(test)]
    fn planned(&self) -> Arc<[Range<usize>]> {
        lock(&self.plan).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// For each page of `memory`: whether it is this process's own copy (present, private and
/// mapped once), which for a slot's memory means written since it was mapped from the
/// snapshot or zero.
fn written_pages(memory: &[u8], page_size: usize) -> std::io::Result<Vec<bool>> {
    let first_page = memory.as_ptr() as usize / page_size;
    let pages = memory.len() / page_size;
    let mut entries = vec![0u8; pages * PAGEMAP_ENTRY];
    let mut pagemap = File::open("/proc/self/pagemap")?;
    pagemap.seek(SeekFrom::Start((first_page * PAGEMAP_ENTRY) as u64))?;
    pagemap.read_exact(&mut entries)?;
    Ok(entries
        .chunks_exact(PAGEMAP_ENTRY)
        .map(|entry| {
            let mut bytes = [0u8; PAGEMAP_ENTRY];
            bytes.copy_from_slice(entry);
            let flags = u64::from_le_bytes(bytes);
            flags & (PRESENT | FILE_OR_SHARED | EXCLUSIVE) == PRESENT | EXCLUSIVE
        })
        .collect())
}

/// The page ranges to write ahead: the hot pages, with the smallest gaps between their runs
/// filled until at most `most_runs` runs remain, and the runs past `most_pages` in total
/// (in address order) left out.
fn plan(heat: &[u16], most_runs: usize, most_pages: usize) -> Vec<Range<usize>> {
    let mut runs: Vec<Range<usize>> = Vec::new();
    for (page, _) in heat.iter().enumerate().filter(|(_, heat)| **heat >= HOT) {
        match runs.last_mut() {
            Some(run) if run.end == page => run.end += 1,
            _ => runs.push(page..page + 1),
        }
    }
    let most_runs = most_runs.max(1);
    if runs.len() > most_runs {
        runs = join_across_smallest_gaps(runs, most_runs);
    }
    let mut budget = most_pages;
    runs.into_iter()
        .take_while(|run| {
            let fits = run.len() <= budget;
            budget = budget.saturating_sub(run.len());
            fits
        })
        .collect()
}

/// `runs` (in address order, more than `most_runs`) as `most_runs` runs: only the widest
/// gaps between them stay open.
fn join_across_smallest_gaps(runs: Vec<Range<usize>>, most_runs: usize) -> Vec<Range<usize>> {
    // Gap `i` lies between runs `i` and `i + 1`.
    let width = |gap: usize| runs[gap + 1].start - runs[gap].end;
    let mut widest_first: Vec<usize> = (0..runs.len() - 1).collect();
    widest_first.sort_by_key(|&gap| std::cmp::Reverse(width(gap)));
    let mut open = vec![false; runs.len() - 1];
    for &gap in &widest_first[..most_runs - 1] {
        open[gap] = true;
    }
    let mut joined: Vec<Range<usize>> = Vec::with_capacity(most_runs);
    for (index, run) in runs.into_iter().enumerate() {
        match joined.last_mut() {
            Some(last) if !open[index - 1] => last.end = run.end,
            _ => joined.push(run),
        }
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hot(pages: &[usize]) -> Vec<u16> {
        let mut heat = vec![0; pages.iter().max().map_or(0, |last| last + 1)];
        for &page in pages {
            heat[page] = HOT;
        }
        heat
    }

    #[test]
    fn hot_pages_make_runs() {
        let heat = hot(&[1, 2, 3, 7, 9, 10]);
        assert_eq!(plan(&heat, 8, 100), vec![1..4, 7..8, 9..11]);
    }

    #[test]
    fn the_smallest_gaps_are_filled_down_to_the_most_runs() {
        // Gaps: 3 (4..7), 1 (8..9), 10 (11..21).
        let heat = hot(&[1, 2, 3, 7, 9, 10, 21]);
        assert_eq!(plan(&heat, 3, 100), vec![1..4, 7..11, 21..22]);
        assert_eq!(plan(&heat, 2, 100), vec![1..11, 21..22]);
        assert_eq!(plan(&heat, 1, 100), vec![1..22]);
    }

    #[test]
    fn equal_gaps_are_filled_only_as_far_as_needed() {
        // Four runs with gaps of 1, 1, 1: two runs means filling two of the three gaps.
        let heat = hot(&[0, 2, 4, 6]);
        assert_eq!(plan(&heat, 2, 100).len(), 2);
        assert_eq!(plan(&heat, 3, 100).len(), 3);
    }

    #[test]
    fn runs_past_the_budget_are_left_out() {
        let heat = hot(&[0, 1, 2, 10, 11, 20]);
        assert_eq!(plan(&heat, 8, 5), vec![0..3, 10..12]);
        assert_eq!(plan(&heat, 8, 4), vec![0..3]);
    }

    #[test]
    fn pages_cool_down_when_calls_stop_writing_them() {
        let mut heat = 0u16;
        let mut step = |written: bool| {
            heat = heat - heat / 8 + if written { HEAT_GAIN } else { 0 };
            heat >= HOT
        };
        let warming: Vec<bool> = (0..6).map(|_| step(true)).collect();
        assert_eq!(warming, [false, false, false, false, false, true]);
        let cooling = (0..20).take_while(|_| step(false)).count();
        assert!(cooling < 10, "{cooling}");
    }

    #[test]
    fn a_written_page_of_this_process_is_seen_and_planned() {
        let page_size = rustix::param::page_size();
        // Fresh anonymous memory: untouched pages are not present.
        let mut memory = vec![0u8; 64 * page_size];
        let start = memory.as_ptr().align_offset(page_size);
        let aligned = &mut memory[start..start + 32 * page_size];
        aligned[5 * page_size] = 1;
        let written = written_pages(aligned, page_size).expect("the page map is readable");
        assert!(written[5]);

        let working_set = WorkingSet::new();
        for _ in 0..PLAN_EVERY * OBSERVE_EVERY {
            aligned[5 * page_size] += 1;
            working_set.observe(aligned);
        }
        let planned = working_set.planned();
        assert!(
            planned.iter().any(|range| range.contains(&(5 * page_size))),
            "{planned:?}"
        );
        working_set.touch(aligned);
    }
}
