"""Reading and writing CT scans, the paper's l3_dataset.npz layout and annotation tables."""
