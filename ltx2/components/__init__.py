"""Making LTX-2 components from the files (ltx2/files/) under a policy, through the budget."""
