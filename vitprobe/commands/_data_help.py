"""The --data help shared by the commands (kept free of torch, like every command module)."""

SPEC_HELP = ("dataset spec: synthetic[:N[:seed]], digits, folder:PATH, voc:PATH[:split] (split val by default); folder:PATH holds "
             "one sub-folder per class (or only images, without labels); image files that do not decode "
             "are skipped and counted")
