"""The same workloads written for peer engines; each module imports its engine at the top."""
