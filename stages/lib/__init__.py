"""Libraries the stages share that are not stages themselves: errors, atomic files, rewards, model folders."""
