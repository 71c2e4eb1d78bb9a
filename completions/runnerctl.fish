complete --keep-order --exclusive --command runnerctl --arguments "(COMPLETE=fish runnerctl -- (commandline --current-process --tokenize --cut-at-cursor) (commandline --current-token))"
