import QDWalletCLI

QDWalletCommand.runMain()
