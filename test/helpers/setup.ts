import { parseInt8AsNumber } from "../../control/index.ts";

// What each entry point does at start (cli/main.ts): int8 columns parse to exact numbers.
parseInt8AsNumber();
