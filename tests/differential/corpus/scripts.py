"""The differential corpus: scripts run by both pybpftrace and bpftrace 0.17 against tests/progs/workload.c.

Each case is ``(name, script)`` or ``(name, script, options)`` where options may
give ``args`` (positional parameters), ``flags`` (extra command-line flags),
``env`` (environment variables) and ``rounds`` (the workload's argument).
Every probe on a syscall is filtered by ``pid == cpid`` so only the workload
counts; what the workload does is fixed (see workload.c), so both tools must
print the same bytes up to the normalisation in the test.
"""

OPEN = "t:syscalls:sys_enter_openat /pid == cpid/"
OPENX = "t:syscalls:sys_exit_openat /pid == cpid/"
READ = "t:syscalls:sys_enter_read /pid == cpid && args->fd > 2/"
READX = "t:syscalls:sys_exit_read /pid == cpid && args->ret >= 0 && args->ret < 8/"
WRITE = "t:syscalls:sys_enter_write /pid == cpid/"
KILL = "t:syscalls:sys_enter_kill /pid == cpid/"
GETPID = "t:syscalls:sys_enter_getpid /pid == cpid/"
CLOSE = "t:syscalls:sys_enter_close /pid == cpid && args->fd > 2/"
W = "@WORKLOAD@"  # replaced by the path of the built workload

CASES = [
    # -- aggregations, 0/1/2-part keys -------------------------------------------------
    ("count_nokey", f"{OPEN} {{ @ = count(); }}"),
    ("count_named", f"{OPEN} {{ @opens = count(); }}"),
    ("count_strkey", f"{OPEN} {{ @[str(args->filename)] = count(); }}"),
    ("count_intkey", f"{OPEN} {{ @[args->flags] = count(); }}"),
    ("count_2key", f"{OPEN} {{ @[comm, args->flags] = count(); }}"),
    ("count_2key_int_str", f"{KILL} {{ @[args->sig, comm] = count(); }}"),
    ("sum_nokey", f"{READ} {{ @ = sum(args->count); }}"),
    ("sum_key", f"{READ} {{ @[args->fd] = sum(args->count); }}"),
    ("sum_negative", f"{OPENX} {{ @ = sum(args->ret); }}"),
    ("avg_nokey", f"{READ} {{ @ = avg(args->count); }}"),
    ("avg_key", f"{OPENX} {{ @[args->ret] = avg(args->ret); }}"),
    ("min_max", f"{READ} {{ @mn = min(args->count); @mx = max(args->count); }}"),
    ("min_max_neg", f"{OPENX} {{ @mn = min(args->ret); @mx = max(args->ret); }}"),
    ("min_max_key", f"{READ} {{ @mn[comm] = min(args->count); @mx[comm] = max(args->count); }}"),
    # 0.17 keeps min as 0xffffffff - value and stores when new >= old (missing = 0): a max of
    # negatives and a min above 0xffffffff are never stored, a min of 0xffffffff prints 0
    ("max_negative_only", "t:syscalls:sys_exit_openat /pid == cpid && args->ret < 0/ "
                          "{ @mx = max(args->ret); @mxk[comm] = max(args->ret); @mn = min(args->ret); }"),
    ("min_biased", f"{READ} {{ @big = min(args->count + (1 << 33)); @top = min(args->count * 0 + 0xffffffff); "
                   "@mx = max(args->count - 1000000); @ok = min(args->count); }"),
    ("stats_nokey", f"{READ} {{ @ = stats(args->count); }}"),
    ("stats_key", f"{OPENX} {{ @[comm] = stats(args->ret); }}"),
    ("hist_nokey", f"{READ} {{ @ = hist(args->count); }}"),
    ("hist_key", f"{READ} {{ @[comm] = hist(args->count); }}"),
    ("hist_neg", f"{OPENX} {{ @ = hist(args->ret); }}"),
    ("hist_2key", f"{READ} {{ @[comm, args->fd] = hist(args->count * 1000); }}"),
    ("lhist_nokey", f"{READ} {{ @ = lhist(args->count, 0, 10, 2); }}"),
    ("lhist_key", f"{READ} {{ @[comm] = lhist(args->count, 0, 5, 1); }}"),
    ("lhist_neg", f"{OPENX} {{ @ = lhist(args->ret, -5, 5, 1); }}"),
    ("lhist_over", f"{READ} {{ @ = lhist(args->count * 100, 0, 300, 100); }}"),
    ("all_aggs", f"{READ} {{ @c = count(); @s = sum(args->count); @a = avg(args->count); "
                 "@n = min(args->count); @x = max(args->count); @st = stats(args->count); }"),
    ("count_many_keys", f"{READX} {{ @[args->ret, comm, args->ret * 2] = count(); }}"),
    # -- int/string/tuple values -----------------------------------------------------
    ("map_int_value", f"{OPEN} {{ @last = args->flags; }}"),
    ("map_str_value", f"{OPEN} {{ @name = str(args->filename); }}"),
    ("map_tuple_value", f"{KILL} {{ @t = (args->sig, comm, 7); }}"),
    ("map_tuple_key", f"{KILL} {{ @[(args->sig, comm)] = count(); }}"),
    ("map_keyed_str_value", f"{OPEN} {{ @[args->flags] = str(args->filename); }}"),
    ("map_tuple_str_key", f"{OPEN} {{ @[comm, str(args->filename)] = sum(1); }}"),
    # -- builtins ----------------------------------------------------------------------
    ("probe_key", f"{OPEN} {{ @[probe] = count(); }}"),
    ("probe_printf", f"{KILL} {{ printf(\"%s\\n\", probe); }}"),
    ("comm_printf", f"{KILL} {{ printf(\"[%s]\\n\", comm); }}"),
    ("pid_tid", f"{KILL} {{ printf(\"%d %d %d\\n\", pid - cpid, tid - cpid, pid == tid); }}"),
    ("uid_gid", f"{KILL} {{ printf(\"%d %d\\n\", uid, gid); @[uid, gid] = count(); }}"),
    ("kill_args", f"{KILL} {{ printf(\"sig=%d self=%d\\n\", args->sig, args->pid == cpid); }}"),
    ("openat_args", f"{OPEN} {{ printf(\"%d %d %s\\n\", args->dfd, args->flags, str(args->filename)); }}"),
    ("str_n", f"{OPEN} {{ printf(\"%s\\n\", str(args->filename, 5)); }}"),
    ("str_n_key", f"{OPEN} {{ @[str(args->filename, 8)] = count(); }}"),
    # str(p, n) with n known only at run time: n characters, cut at BPFTRACE_STRLEN - 1
    ("str_runtime_length", f"{OPEN} {{ $n = 5; $z = 0; $m = -1; "
                           "printf(\"%s|%s|%s|%s\\n\", str(args->filename, $n), str(args->filename, $z), "
                           "str(args->filename, $m), str(args->filename, args->dfd + 110)); }"),
    ("str_runtime_length_strlen", f"{OPEN} {{ $n = 100; printf(\"%s|\\n\", str(args->filename, $n)); }}",
     {"env": {"BPFTRACE_STRLEN": "8"}}),
    # a tracepoint field that points to a kernel struct is typed through BTF, read from user memory
    ("tp_struct_pointer_field", "t:syscalls:sys_enter_nanosleep /pid == cpid/ "
                                "{ printf(\"%d %d\\n\", args->rqtp->tv_sec, args->rqtp->tv_nsec); "
                                "@[args->rqtp->tv_nsec % 2] = count(); }"),
    # strncmp over no bytes is 0 (it had given code the verifier called unreachable)
    ("strncmp_zero", 'BEGIN { printf("%d %d %d\\n", strncmp("abc", "abd", 0), strncmp("abc", "abd", 2), '
                     'strncmp("abc", "abd", 3)); exit(); }'),
    # buf() with a length known only at run time, and one clamped to BPFTRACE_STRLEN
    ("buf_runtime_length", f"{OPEN} {{ printf(\"%r\\n\", buf(args->filename, args->flags + 4)); }}"),
    ("buf_runtime_length_clamped", f"{OPEN} {{ printf(\"%r\\n\", buf(args->filename, args->flags + 90)); }}",
     {"env": {"BPFTRACE_STRLEN": "20"}}),
    ("write_args", f"{WRITE} {{ printf(\"fd=%d count=%d\\n\", args->fd, args->count); }}"),
    ("read_args", f"{READ} {{ printf(\"fd=%d count=%d\\n\", args->fd, args->count); }}"),
    ("exit_ret", f"{OPENX} {{ printf(\"ret=%d\\n\", args->ret); }}"),
    ("exit_read_ret", f"{READX} {{ @[args->ret] = count(); }}"),
    ("exit_ret_sign", f"{OPENX} {{ @[args->ret < 0] = count(); }}"),
    ("getpid_count", f"{GETPID} {{ @ = count(); }}"),
    ("close_fd", f"{CLOSE} {{ if (comm == \"workload\") {{ @[args->fd] = count(); }} }}"),
    ("exit_group", "t:syscalls:sys_enter_exit_group /pid == cpid/ { printf(\"code %d\\n\", args->error_code); }"),
    # -- printf -------------------------------------------------------------------------
    ("printf_verbs", f"{KILL} {{ printf(\"%d|%u|%x|%X|%o|%c|%s|%%\\n\", args->sig, args->sig, 255, 255, 8, 65, comm); }}"),
    ("printf_widths", f"{KILL} {{ printf(\"[%5d][%-5d][%05d][%10s][%-10s]\\n\", args->sig, args->sig, 42, comm, comm); }}"),
    ("printf_long", f"{KILL} {{ printf(\"%ld %lu %lld %llu %lx\\n\", -1, 2, -3, 4, 255); }}"),
    ("printf_neg", f"{OPENX} {{ printf(\"%d %u %x\\n\", args->ret, 5, 16); }}"),
    ("printf_noargs", f"{KILL} {{ printf(\"hello\\n\"); }}"),
    ("printf_many", f"{KILL} {{ printf(\"%d %d %d %d %d %d %d\\n\", 1, 2, 3, 4, 5, 6, 7); }}"),
    ("printf_str_width", f"{OPEN} {{ printf(\"%-30s|\\n\", str(args->filename)); }}"),
    ("printf_hex_width", f"{KILL} {{ printf(\"%08x %-8x|\\n\", 48879, 10); }}"),
    ("printf_escapes", f"{KILL} {{ printf(\"a\\tb\\\"c\\\\d\\n\"); }}"),
    # -- print / clear / zero / delete ---------------------------------------------------
    ("print_map", f"{OPEN} {{ @[str(args->filename)] = count(); }} END {{ print(@); clear(@); }}"),
    ("print_top", f"{OPEN} {{ @[str(args->filename)] = count(); }} END {{ print(@, 2); clear(@); }}"),
    # print()'s divisor: an avg is divided, a hist's counts are but not its rows or bars,
    # an lhist ignores it, a stats map ignores top and div (with a warning on stderr)
    ("print_top_div_kinds", f"{READ} {{ @a[args->fd] = avg(args->count); @h = hist(args->count); "
                            "@l[args->fd] = lhist(args->count, 0, 1000, 100); @s[args->fd] = stats(args->count); } "
                            "END { print(@a, 1, 3); print(@h, 0, 3); print(@l, 1, 3); print(@s, 1, 2); "
                            "clear(@a); clear(@h); clear(@l); clear(@s); }"),
    ("hist_beyond_32_bits", f"{READ} {{ @ = hist(args->count << 30); @k[comm] = hist(args->count * 0x100000000); }}"),
    ("print_top_div", f"{READ} {{ @[args->count] = sum(args->count * 100); }} END {{ print(@, 2, 10); clear(@); }}"),
    ("print_value_int", f"{KILL} {{ print(args->sig); }}"),
    ("print_value_str", f"{KILL} {{ print(comm); }}"),
    ("print_value_tuple", f"{KILL} {{ print((1, comm, args->sig)); }}"),
    ("print_hist", f"{READ} {{ @h = hist(args->count); }} END {{ print(@h); clear(@h); }}"),
    ("clear_map", f"{OPEN} {{ @[args->flags] = count(); }} {KILL} {{ clear(@); }}"),
    ("zero_map", f"{OPEN} {{ @[args->flags] = count(); }} END {{ zero(@); }}"),
    ("zero_hist", f"{READ} {{ @ = hist(args->count); }} END {{ zero(@); }}"),
    ("delete_key", f"{OPEN} {{ @[args->flags] = count(); }} {KILL} {{ delete(@[0]); }}"),
    ("delete_str", f"{OPEN} {{ @[str(args->filename)] = count(); }} END {{ delete(@[\"/etc/hostname\"]); }}"),
    # -- variables and control flow ------------------------------------------------------
    ("vars", f"{READ} {{ $a = args->count; $b = $a * 2; @[$a] = sum($b); }}"),
    ("var_str", f"{OPEN} {{ $s = str(args->filename); @[$s] = count(); }}"),
    ("if_else", f"{OPENX} {{ if (args->ret < 0) {{ @fail = count(); }} else {{ @ok = count(); }} }}"),
    ("if_only", f"{READ} {{ if (args->count > 2) {{ @big = count(); }} }}"),
    ("if_nested", f"{READ} {{ if (args->count > 1) {{ if (args->count > 3) {{ @[\"gt3\"] = count(); }} "
                  "else { @[\"2-3\"] = count(); } } else { @[\"le1\"] = count(); } }"),
    ("ternary", f"{OPENX} {{ @[args->ret >= 0 ? 1 : 0] = count(); }}"),
    ("ternary_str", f"{OPENX} {{ printf(\"%s\\n\", args->ret >= 0 ? \"ok\" : \"fail\"); }}"),
    ("ternary_int", f"{READ} {{ @ = sum(args->count > 2 ? 10 : 1); }}"),
    ("while_loop", "BEGIN { $i = 0; while ($i < 10) { $i++; @ = sum($i); } exit(); }"),
    ("while_break", "BEGIN { $i = 0; while ($i < 100) { $i++; if ($i == 7) { break; } } printf(\"%d\\n\", $i); exit(); }"),
    ("while_continue", "BEGIN { $i = 0; $s = 0; while ($i < 10) { $i++; if ($i % 2 == 0) { continue; } $s += $i; } "
                       "printf(\"%d\\n\", $s); exit(); }"),
    ("unroll", "BEGIN { $i = 1; unroll(5) { $i = $i * 2; } printf(\"%d\\n\", $i); exit(); }"),
    # sizeof() is sized once, by semantic analysis: script structs, C and bpftrace type names, expressions
    ("sizeof_script_struct", "struct Foo { int a; char b[10]; long c; } struct Bar { struct Foo f; short s; } "
                             "BEGIN { printf(\"%d %d %d %d %d %d\\n\", sizeof(struct Foo), sizeof(struct Bar), "
                             "sizeof(uint16), sizeof(comm), sizeof(int32), sizeof(struct task_struct) > 1000); exit(); }"),
    ("enum_identifiers", "BEGIN { @[TCP_CLOSE] = count(); @t = true; @f = false; "
                         "printf(\"%d %d\\n\", TCP_SYN_SENT, true + 1); exit(); }"),
    ("narrow_incdec_wraps", "BEGIN { $a = (uint8)255; $a++; $b = (int8)127; $b++; $c = (int16)-32768; $c--; "
                            "$d = (uint8)255; printf(\"%d %d %d %d \", $a, $b, $c, $d++); "
                            "printf(\"%d\\n\", ++$d); exit(); }"),
    ("divide_by_constant_zero", "BEGIN { printf(\"%d %d %d\\n\", 7 / 0, 7 % 0, (uint64)9 / 0); exit(); }"),
    ("ksym_usym_zero", "BEGIN { printf(\"%s %s %s %s\\n\", ksym(0), usym(0), ksym(1), usym(16)); exit(); }"),
    ("numaid_kptr_uptr", "BEGIN { printf(\"%d %d %d\\n\", numaid, kptr(1), uptr(5) + 1); exit(); }"),
    ("bswap_widths", "BEGIN { printf(\"%x %x %x %x %lx\\n\", bswap((uint32)1), bswap((uint16)0x1234), "
                     "bswap((uint8)7), bswap((uint64)1), bswap(0x1234)); @ = bswap((uint64)1); "
                     "@b = bswap((int32)-2); exit(); }"),
    ("strerror", "BEGIN { printf(\"%s|%s|%s\\n\", strerror(2), strerror(-5), strerror(0)); @s = strerror(1); exit(); }"),
    ("strcontains", "BEGIN { printf(\"%d %d %d %d %d %d %d %d\\n\", strcontains(\"hello\", \"ll\"), "
                    "strcontains(\"hello\", \"lo!\"), strcontains(\"\", \"\"), strcontains(\"abc\", \"\"), "
                    "strcontains(\"aab\", \"ab\"), strcontains(\"ab\", \"abc\"), strcontains(\"xyzxyz\", \"zx\"), "
                    "strcontains(\"abc\", \"c\")); exit(); }"),
    ("strcontains_filter", "t:syscalls:sys_enter_openat /pid == cpid && strcontains(str(args->filename), \"tmp\")/ "
                           "{ @[str(args->filename)] = count(); }"),
    ("incdec", "BEGIN { $i = 5; $i++; $i++; $i--; @x++; @x++; @y--; printf(\"%d\\n\", $i); exit(); }"),
    ("incdec_keyed", f"{OPEN} {{ @[args->flags]++; }}"),
    ("compound", "BEGIN { $a = 10; $a += 5; $a -= 3; $a *= 4; $a /= 3; $a %= 7; $a <<= 3; $a >>= 1; "
                 "$a |= 1; $a &= 0xff; $a ^= 2; printf(\"%d\\n\", $a); exit(); }"),
    ("compound_map", f"{READ} {{ @s += args->count; @m[comm] += 2; }}"),
    ("str_compare", f"{OPEN} {{ if (str(args->filename) == \"/etc/hostname\") {{ @yes = count(); }} "
                    "if (comm != \"workload\") { @no = count(); } }"),
    ("str_compare_var", f"{OPEN} {{ $f = str(args->filename); @[$f == \"/etc/hostname\"] = count(); }}"),
    ("casts", "BEGIN { printf(\"%d %d %d %d %d %d\\n\", (int8)300, (uint8)300, (int16)70000, (uint16)-1, "
              "(int32)4294967295, (uint32)-1); exit(); }"),
    ("cast_arg", f"{OPENX} {{ @[(uint8)args->ret] = count(); }}"),
    ("arith", "BEGIN { printf(\"%d %d %d %d %d %d\\n\", 7 / 2, 7 % 3, -7 / 2, 1 << 10, 1024 >> 3, 6 & 3 | 8 ^ 1); exit(); }"),
    ("logic", "BEGIN { printf(\"%d %d %d %d %d\\n\", 1 && 0, 1 || 0, !5, !0, ~0 == -1); exit(); }"),
    ("compare_signed", "BEGIN { $a = -1; printf(\"%d %d %d\\n\", $a < 0, $a > 1, $a == -1); exit(); }"),
    ("positional", f"{KILL} {{ printf(\"%d %s %d\\n\", $1, str($2), $#); }}", {"args": ("42", "hello")}),
    ("positional_pred", "t:syscalls:sys_enter_read /pid == cpid && args->count == $1/ { @ = count(); }",
     {"args": ("3",)}),
    ("var_string_widens", 'BEGIN { $x = "abc"; printf("%s|\\n", $x); $x = "abcdefghijk"; printf("%s|\\n", $x); exit(); }'),
    ("positional_count", "BEGIN { printf(\"%d\\n\", $#); exit(); }", {"args": ("a", "b", "c")}),
    # -- BEGIN / END / exit / several probes -------------------------------------------------
    ("begin_end", f"BEGIN {{ printf(\"start\\n\"); }} {OPEN} {{ @ = count(); }} END {{ printf(\"end %d\\n\", @); }}"),
    ("end_print", f"{OPEN} {{ @a[args->flags] = count(); }} {KILL} {{ @b = count(); }} END {{ print(@a); print(@b); clear(@a); clear(@b); }}"),
    ("begin_map", "BEGIN { @start = 1; @name = \"x\"; } END { printf(\"%d %s\\n\", @start, @name); }"),
    ("exit_probe", f"{KILL} {{ printf(\"got kill\\n\"); exit(); }}"),
    ("exit_begin", "BEGIN { printf(\"bye\\n\"); exit(); } END { printf(\"end\\n\"); }"),
    ("shared_block", "t:syscalls:sys_enter_kill,t:syscalls:sys_enter_getpid /pid == cpid/ { @[probe] = count(); }"),
    ("shared_block3", "t:syscalls:sys_enter_kill,t:syscalls:sys_enter_getpid,t:syscalls:sys_enter_write "
                      "/pid == cpid/ { @c = count(); }"),
    ("two_probes", f"{KILL} {{ @k = count(); }} {GETPID} {{ @g = count(); }}"),
    ("wildcard_open", "t:syscalls:sys_enter_*open* /pid == cpid/ { @[probe] = count(); }"),
    # every syscall tracepoint: one sys_enter raw tracepoint program stands for them (ebpfpy.attach.syscalls)
    ("wildcard_all_enter", "t:syscalls:sys_enter_* /pid == cpid/ { @[probe] = count(); }"),
    ("wildcard_all_exit", "t:syscalls:sys_exit_*, t:syscalls:sys_enter_kill /pid == cpid/ "
                          "{ @[probe] = count(); $one = 1; @total = sum($one); }"),
    ("wildcard_kill", "t:syscalls:sys_*_kill /pid == cpid/ { @[probe] = count(); }"),
    ("wildcard_getpid", "tracepoint:syscalls:sys_*_getpid /pid == cpid/ { @[probe, comm] = count(); }"),
    ("pred_only_comm", "t:syscalls:sys_enter_kill /comm == \"workload\" && pid == cpid/ { @ = count(); }"),
    ("no_pred_filter", "t:syscalls:sys_enter_kill { if (pid == cpid) { @ = count(); } }"),
    # -- output format and environment ---------------------------------------------------------
    ("json_count", f"{OPEN} {{ @[str(args->filename)] = count(); }}", {"flags": ("-f", "json")}),
    ("json_printf", f"{KILL} {{ printf(\"sig %d\\n\", args->sig); }}", {"flags": ("-f", "json")}),
    ("json_hist", f"{READ} {{ @ = hist(args->count); @l = lhist(args->count, 0, 10, 1); }}", {"flags": ("-f", "json")}),
    ("json_stats", f"{READ} {{ @s = stats(args->count); @a = avg(args->count); @t = (1, \"x\"); }}", {"flags": ("-f", "json")}),
    ("json_print", f"{KILL} {{ print(comm); print(5); }}", {"flags": ("-f", "json")}),
    ("quiet", f"{OPEN} {{ @ = count(); }}", {"flags": ("-q",)}),
    ("quiet_printf", f"{KILL} {{ printf(\"k\\n\"); }}", {"flags": ("-q",)}),
    ("strlen", f"{OPEN} {{ @[str(args->filename)] = count(); }}", {"env": {"BPFTRACE_STRLEN": "8"}}),
    ("strlen_comm", f"{KILL} {{ printf(\"%s %s\\n\", comm, \"abcdefghijklmnop\"); }}",
     {"env": {"BPFTRACE_STRLEN": "12"}}),
    ("map_keys_max", f"{OPEN} {{ @[str(args->filename)] = count(); }}", {"env": {"BPFTRACE_MAP_KEYS_MAX": "3"}}),
    ("map_keys_max_big", f"{READ} {{ @[args->count] = count(); }}", {"env": {"BPFTRACE_MAP_KEYS_MAX": "100"}}),
    # -- misc --------------------------------------------------------------------------------
    ("sort_values", f"{READ} {{ @[args->count] = sum(args->count); }}"),
    ("sort_str_values", f"{OPEN} {{ @[args->flags] = str(args->filename); }}"),
    ("map_read", f"{READ} {{ @c[comm] = count(); @last = @c[comm]; }}"),
    ("map_read_missing", f"{KILL} {{ @y[1] = 2; @x = @y[5] + 1; }}"),
    ("map_read_missing_err", f"{KILL} {{ @x = @q[5] + 1; }}"),
    ("map_read_missing_str", f"{KILL} {{ @z[1] = 1; printf(\"%d\\n\", @z[2]); }}"),
    ("variable_reuse", f"{READ} {{ $x = args->count; $x = $x + 1; @[$x] = count(); }}"),
    ("scoped_vars", f"{READ} {{ if (args->count > 2) {{ $v = 1; }} else {{ $v = 2; }} @[$v] = count(); }}"),
    ("hist_zero", "BEGIN { @ = hist(0); @ = hist(1); @ = hist(2); @ = hist(3); @ = hist(4); exit(); }"),
    ("hist_big", "BEGIN { @ = hist(1000000); @ = hist(1048576); @ = hist(2097151); exit(); }"),
    ("lhist_edges", "BEGIN { @ = lhist(0, 0, 100, 10); @ = lhist(99, 0, 100, 10); @ = lhist(100, 0, 100, 10); "
                    "@ = lhist(-1, 0, 100, 10); @ = lhist(10, 0, 100, 10); exit(); }"),
    ("begin_tuple", "BEGIN { @t = (1, -2, \"three\"); $t = (4, \"five\"); printf(\"%d %s\\n\", $t.0, $t.1); exit(); }"),
    ("begin_str_map", "BEGIN { @[\"a\"] = 1; @[\"b\"] = 2; @[\"c\"] = 2; exit(); }"),
    ("nested_ternary", f"{READ} {{ @[args->count < 2 ? 0 : (args->count < 4 ? 1 : 2)] = count(); }}"),
    ("count_div", f"{READ} {{ @ = sum(args->count / 2); @m = sum(args->count % 3); }}"),
    ("multiple_printf", f"{KILL} {{ printf(\"a\\n\"); printf(\"b %d\\n\", 1); printf(\"c %s\\n\", \"x\"); }}"),
    # -- functions and builtins beyond the basics ----------------------------------------------
    ("join", "t:syscalls:sys_enter_execve /pid == cpid/ { join(args->argv); }"),
    # a __data_loc char[] field read with str(), whole and cut (0.17 rejects str() on a string)
    ("data_loc_str", "t:sched:sched_process_exec /pid == cpid/ "
                     "{ printf(\"%s|%s|\\n\", str(args->filename), str(args->filename, 4)); }"),
    ("join_delim", "t:syscalls:sys_enter_execve /pid == cpid/ { join(args->argv, \",\"); }"),
    ("join_json", "t:syscalls:sys_enter_execve /pid == cpid/ { join(args->argv); }", {"flags": ("-f", "json")}),
    ("buf_r", f"{OPEN} {{ printf(\"%r|\\n\", buf(args->filename, 6)); }}"),
    ("kstack_printf", f"{KILL} {{ printf(\"%s\\n\", kstack); exit(); }}"),
    ("kstack_key", f"{KILL} {{ @[kstack] = count(); }}"),
    ("kstack_limit", f"{KILL} {{ @[kstack(2)] = count(); }}"),
    ("strftime_year", "BEGIN { printf(\"%s\\n\", strftime(\"%Y\", nsecs)); exit(); }"),
    ("pton_ntop", "BEGIN { printf(\"%s %s\\n\", ntop(pton(\"10.1.2.3\")), ntop(pton(\"fe80::1\"))); exit(); }"),
    ("sizeof", "BEGIN { printf(\"%d %d %d\\n\", sizeof(int8), sizeof(uint32), sizeof(int64)); exit(); }"),
    ("curtask_fields", f"{KILL} {{ printf(\"%s %d %d\\n\", curtask->comm, curtask->pid == tid, "
                       "((struct task_struct *)curtask)->tgid == pid); }"),
    ("curtask_chain", f"{KILL} {{ @[curtask->real_parent->tgid > 0, curtask->mm->map_count > 0] = count(); }}"),
    ("uprobe_args", f"u:{W}:workload_sum8 /pid == cpid/ {{ printf(\"%d %d %s\\n\", arg0, arg5, func); }}"),
    ("uprobe_arg6", f"u:{W}:workload_sum8 {{ printf(\"%d\\n\", arg6); }}"),
    ("uprobe_sarg", f"u:{W}:workload_sum8 /pid == cpid/ {{ @[sarg0, sarg1] = count(); }}"),
    ("uretprobe", f"ur:{W}:workload_sum8 /pid == cpid/ {{ @ = sum(retval); @m = max(retval); }}"),
    ("usdt_args", f"usdt:{W}:workload:round /pid == cpid/ {{ printf(\"%d/%d\\n\", arg0, arg1); }}"),
    ("usdt_hist", f"usdt:{W}:workload:round /pid == cpid/ {{ @ = lhist(arg0, 0, 4, 1); }}"),
    ("uaddr", f"u:{W}:main /pid == cpid/ {{ printf(\"%d %d\\n\", arg0, uaddr(\"workload_total\") > 0); }}"),
    # -- more combinations ------------------------------------------------------------------------
    ("keyless_count_end", f"{KILL} {{ @x = count(); }} END {{ print(@x); clear(@x); }}"),
    ("print_lhist_keyed", f"{READ} {{ @[comm] = lhist(args->count, 0, 4, 1); }} END {{ print(@); clear(@); }}"),
    ("print_avg_top", f"{READ} {{ @[args->count] = avg(args->count); }} END {{ print(@, 1); clear(@); }}"),
    ("print_stats", f"{READ} {{ @s = stats(args->count); }} END {{ print(@s); clear(@s); }}"),
    ("zero_keyed", f"{READ} {{ @[args->count] = sum(args->count); }} END {{ zero(@); }}"),
    ("delete_2key", f"{READ} {{ @[args->fd, args->count] = count(); }} END {{ delete(@[3, 1]); }}"),
    ("or_condition", f"{READ} {{ if (args->count == 1 || args->count == 3) {{ @odd = count(); }} }}"),
    ("and_pred", "t:syscalls:sys_enter_read /pid == cpid && args->fd > 2 && args->count != 2/ { @ = count(); }"),
    ("ge_le_pred", "t:syscalls:sys_enter_read /pid == cpid && args->count >= 2 && args->count <= 3/ { @ = count(); }"),
    ("negative_values", "BEGIN { @[-1] = -5; @[2] = -10; @[-3] = 7; exit(); }"),
    ("cast_ret_u8", f"{OPENX} {{ $r = (uint8)args->ret; @[$r] = count(); }}"),
    ("print_tuple_str", f"{KILL} {{ print((comm, args->sig, \"x\")); }}"),
    ("json_print_map_top", f"{OPEN} {{ @[str(args->filename)] = count(); }} END {{ print(@, 2); clear(@); }}",
     {"flags": ("-f", "json")}),
    ("json_printf_str", f"{OPEN} {{ printf(\"%s\\n\", str(args->filename)); }}", {"flags": ("-f", "json")}),
    ("strlen_200", f"{OPEN} {{ @[str(args->filename)] = count(); }}", {"env": {"BPFTRACE_STRLEN": "200"}}),
    ("printf_pad_strs", f"{KILL} {{ printf(\"%-5s|%5s|%-12s|\\n\", \"ab\", \"cd\", comm); }}"),
    ("printf_char_expr", f"{KILL} {{ printf(\"%c%c\\n\", 55 + args->sig, 65); }}"),
    ("sum_2key_write", f"{WRITE} {{ @[args->fd, args->count] = sum(args->count + 1); }}"),
    ("map_arith", "BEGIN { @x[1] = 10; @x[2] = 32; @y = @x[1] + @x[2]; @z = @x[1] * @x[2] - @x[3]; exit(); }"),
    ("while_map", "BEGIN { $i = 0; while ($i < 5) { @[$i % 2] = sum($i); $i++; } exit(); }"),
    ("unroll_map", "BEGIN { unroll(4) { @i++; printf(\"%d\\n\", @i); } exit(); }"),
    ("param_missing", f"{KILL} {{ printf(\"[%s] %d\\n\", str($1), $#); }}"),
    ("param_int_math", "BEGIN { printf(\"%d\\n\", $1 * $2 + 1); exit(); }", {"args": ("6", "7")}),
    ("ternary_in_printf", f"{OPENX} {{ printf(\"%s %d\\n\", args->ret < 0 ? \"err\" : \"fd\", args->ret < 0 ? -args->ret : args->ret); }}"),
    ("nested_if_else_chain", f"{READ} {{ if (args->count == 1) {{ @[\"one\"] = count(); }} else {{ if (args->count == 2) "
                             "{ @[\"two\"] = count(); } else { @[\"many\"] = count(); } } }"),
    ("str_var_compare", f"{OPEN} {{ $f = str(args->filename); if ($f != \"/etc/hostname\") {{ @other = count(); }} }}"),
    ("comm_key_hist", f"{READX} {{ @[comm] = hist(args->ret); }}"),
    ("exit_in_end_maps", f"{KILL} {{ @k[args->sig] = count(); }} END {{ printf(\"done\\n\"); }}"),
    ("exit_after_count", f"{OPEN} {{ @n++; if (@n == 2) {{ printf(\"two\\n\"); exit(); }} }} END {{ clear(@n); }}"),
    # -- maps read before (or in a probe before) the statement that writes them (issue #12) --------
    # bpftrace's passes type them; one no pass has typed reads as an unsigned 0 ("@a = @a - 5")
    ("map_read_before_write", "BEGIN { @a = @a + 1; @b = @b - 5; @c[1] -= 10; @d = @d + 1; @d = -5; exit(); }"),
    ("map_written_in_later_probe", f"BEGIN {{ @x = @y; @z = @w * 2; printf(\"%d\\n\", @w); }} {KILL} {{ @y = \"abc\"; "
                                   "@w = -3; exit(); }"),
    ("print_map_written_later", "BEGIN { print(@h); print(@s); clear(@c); zero(@s); exit(); } "
                                "END { @h[1] = 1; @s = stats(3); @c[1, 2] = count(); }"),
    ("print_hist_written_later", f"BEGIN {{ print(@h, 2); }} {READ} {{ @h[comm] = hist(args->count); }} "
                                 "END { print(@h); clear(@h); }"),
    # -- pointer arithmetic: moves by elements (script structs and BTF structs too) ---------------
    ("pointer_incdec", "BEGIN { $p = (int32 *)1000; $p++; $p--; ++$p; --$p; $p += 2; $p -= (int8)-1; "
                       "printf(\"%d\\n\", $p); $b = (int8 *)1000; $b++; printf(\"%d\\n\", $b); exit(); }"),
    ("pointer_arith", "BEGIN { $p = (int64 *)8; $p = $p + 1; printf(\"%d %d %d\\n\", $p, 1 + $p, $p - 1); "
                      "$q = (int8 **)1000; $v = (void *)1000; printf(\"%d %d\\n\", $q + 1, $v + 1); "
                      "printf(\"%d %d %d\\n\", $p + (uint8)1, $p + sizeof(int8), $p + (int32)-1); exit(); }"),
    ("pointer_script_struct", "struct Foo { int a; long b; } BEGIN { $p = (struct Foo *)1000; $p -= 2; "
                              "printf(\"%d %d %d %d\\n\", $p, $p - 1, 3 + $p, sizeof(struct Foo)); $p++; "
                              "printf(\"%d\\n\", $p); exit(); }"),
    ("pointer_btf_struct", "BEGIN { $p = (struct task_struct *)1000; printf(\"%d\\n\", "
                           "($p + 1) - sizeof(struct task_struct)); exit(); }"),
    ("pointer_map_incdec", "BEGIN { @p = (int16 *)10; @p++; @p--; ++@p; @p += 3; printf(\"%d\\n\", @p); "
                           "$p = (int32 *)1000; @v = $p; @v += 1; exit(); }"),
    ("count_read_before_write", f"{KILL} {{ if (@n > 0) {{ printf(\"again %d\\n\", @n); }} @n = count(); }}"),
    # -- found by the grammar-based generator (test_generated_vs_bpftrace.py) ---------------------
    # 0.17 prints every integer map key as a signed 64-bit value, whatever its type
    ("int_keys_print_signed", "BEGIN { @m[(uint8)1] = 1; @m[-5] = 2; @m[~0 << 5] = 3; @u[(uint64)-1] = count(); "
                              "@h[(uint64)1 << 63] = hist(5); @k[(uint16)65535, -2] = 1; "
                              "print((1, (uint64)-1)); exit(); }"),
    # ternaries choosing among literals write straight into one slot (they overflowed 512 bytes)
    ("nested_literal_ternaries", "BEGIN { $a = \"a\"; $b = \"b\"; $c = \"\"; unroll(2) { printf(\"%s %s\\n\", "
                                 "1 ? (0 ? \"hello\" : \"abc\") : \"x\", 0 ? \"y\" : (1 ? \"zz\" : \"w\")); "
                                 "printf(\"%llx %s %s\\n\", 0x1 - ((uint32)65536), \"ab\", "
                                 "(78 ? (~(sizeof(int32)) ? \"hello\" : \"abc\") : \"abc\")); } exit(); }"),
    # strncmp() is unsigned, so comparing it with a negative number is unsigned too
    ("strncmp_unsigned", "BEGIN { printf(\"%d %d\\n\", strncmp(\"a\", \"b\", 1) >= -478, "
                         "-strncmp(\"a\", \"b\", 1) < 0); exit(); }"),
    # -- 0.17 disagreements found on scripts we did not write (issue #12) ----------------------
    # delete() of an avg/stats/hist entry deletes one (key, bucket) entry: bucket 0 without keys,
    # else the bucket the last aggregation of the program wrote (1 after avg/stats: the total)
    ("delete_stats_avg", "BEGIN { @s[1] = stats(5); delete(@s[1]); @t = stats(5); delete(@t); @a[1] = avg(5); "
                         "@a[2] = avg(3); delete(@a[1]); @v = avg(4); delete(@v); @w[\"a\"] = stats(5); @h[1] = hist(-1); "
                         "delete(@w[\"a\"]); exit(); }"),
    ("delete_hist_buckets", "BEGIN { @h[1] = hist(5); @h[1] = hist(100); delete(@h[1]); @g[1] = hist(5); "
                            "@g[2] = hist(100); @x[3] = 4; delete(@g[1]); @k = hist(-1); @k = hist(4); delete(@k); "
                            "@l = lhist(-1, 0, 10, 1); @l = lhist(5, 0, 10, 1); delete(@l); @s[1, 2] = stats(5); "
                            "@s[1, 2] = stats(7); delete(@s[1, 2]); exit(); }"),
    ("delete_hist_in_probe", f"{READ} {{ @[comm] = hist(args->count); @c[comm] = lhist(args->count, 0, 4, 1); "
                             "delete(@[comm]); }"),
    # pointers print in hex as map keys, in decimal anywhere else
    ("pointer_map_keys", "BEGIN { @[(int8 *)1234] = 1; @k[(int16 *)255, 2] = count(); $p = (uint32 *)4096; "
                         "@v[$p] = $p; @t = ((int8 *)1234, 5); print(((int16 *)255, 1)); "
                         "printf(\"%d\\n\", (int8 *)1234); @z[(int8 *)0] = sum(3); exit(); }"),
    ("pointer_map_keys_json", "BEGIN { @[(int8 *)1234] = 1; @k[(int16 *)255, 2] = count(); @t = ((int8 *)1234, 5); "
                              "exit(); }", {"flags": ("-f", "json")}),
    # a positional parameter as lhist's bound: buckets from its value, printed with its number
    ("lhist_param_bounds", "BEGIN { @a = lhist(5, 0, $1, 2); @b[1] = lhist(1, 0, $1, 1); @b[2] = lhist(7, 0, $1, 1); "
                           "@c = lhist(0, 0, $1, 1); @d = lhist(5, 0, 10, $1); @e = lhist(5, 2, $1, 1); exit(); }",
     {"args": ("10",)}),
    ("lhist_param_bounds_json", "BEGIN { @a = lhist(5, 0, $1, 2); @b[1] = lhist(1, 0, $1, 1); "
                                "@b[2] = lhist(7, 0, $1, 1); exit(); }", {"args": ("10",), "flags": ("-f", "json")}),
    ("lhist_param_missing", "BEGIN { @ = lhist(5, 0, $1, 1); exit(); }"),
    # unsigned sums print as u64 whichever way the map is read (one-int-key maps in bulk)
    ("sum_unsigned_bulk", "BEGIN { @[1] = sum((uint64)-1); @[2] = sum((uint64)-2); @n = sum((uint64)-3); "
                          "@k[1, 2] = sum((uint64)-4); @s[\"a\"] = sum((uint64)-5); @i[1] = sum(-1); exit(); }"),
    ("sum_unsigned_probe", f"{READ} {{ @[args->fd] = sum(args->count - 100); @t = sum(args->count - 100); }}"),
    # a string's bytes that are not UTF-8 print raw; JSON escapes every byte >= 0x80 as 0.17 does
    ("non_utf8_strings", "BEGIN { @[\"x\\xff\\xfeA\\xc3\\xa9\"] = 1; @v = \"q\\xff\"; print((\"\\xfe\", 1)); exit(); }"),
    ("non_utf8_strings_json", "BEGIN { @[\"x\\xff\\xfeA\\xc3\\xa9\"] = 1; @v = \"q\\x01\\xff\"; "
                              "printf(\"\\xfe\\t|\\n\"); exit(); }", {"flags": ("-f", "json")}),
    # strftime's %f: microseconds, also inside "%%f"; more than 63 bytes is "(?)"
    ("strftime_usecs", "BEGIN { printf(\"%s|%s|%s|%s\\n\", strftime(\"%H:%M:%S.%f\", 0), strftime(\"%f%f\", 1500000), "
                       "strftime(\"%%f\", 0), strftime(\"%c%c1234567890123456\", 0)); exit(); }"),
]
