#compdef sttcli

_sttcli_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _STTCLI_COMPLETE=complete_zsh sttcli)
}

compdef _sttcli_completion sttcli
