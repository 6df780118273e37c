from bkf.app import main

main()
