from tunecard.cli import main

main()
