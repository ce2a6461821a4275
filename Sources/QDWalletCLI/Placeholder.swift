enum _PlaceholderQDWalletCLI {}
