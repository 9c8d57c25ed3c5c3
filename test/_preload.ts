// Quiet logs in tests unless asked for; failures still print.
process.env.DROVER_LOG ??= "error";
