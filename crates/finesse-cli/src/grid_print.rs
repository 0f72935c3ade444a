//! The one printer of a layer × WQ…WO grid ([`LayerGrid`]) for every CLI report: mask
//! statistics, mask overlaps and distances.

use finesse_sparse::LayerGrid;

/// Prints `grid` as a table: a header of matrix labels, one row per layer, then the groups
/// outside the layers; `cell` formats one value, every column `width` characters wide.
pub fn print_grid<T>(title: &str, grid: &LayerGrid<T>, width: usize, cell: impl Fn(&T) -> String) {
    if grid.layers.is_empty() && grid.groups.is_empty() {
        return;
    }
    println!("{title}:");
    let header: String = grid
        .matrices
        .iter()
        .map(|m| format!("{m:>width$}"))
        .collect();
    println!("{:>12}{header}", "layer");
    for (l, row) in grid.layers.iter().enumerate() {
        let cells: String = row.iter().map(|v| format!("{:>width$}", cell(v))).collect();
        println!("{l:>12}{cells}");
    }
    for (group, v) in &grid.groups {
        println!("{group:>12}{:>width$}", cell(v));
    }
}
