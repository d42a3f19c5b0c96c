use super::binder::edit_distance;
use super::*;

const SEED_NET: &str = "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> \
                        LazyLinear(100) -> ReLU() -> Linear(100, 10)";

const PYTORCH_PRINT: &str = "Sequential(
  (0): Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1))
  (1): ReLU()
  (2): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
  (3): Flatten(start_dim=1, end_dim=-1)
  (4): Linear(in_features=2880, out_features=100, bias=True)
  (5): ReLU()
  (6): Dropout(p=0.5, inplace=False)
  (7): Linear(in_features=100, out_features=10, bias=True)
)";

fn mnist(text: &str) -> Sequential {
    match build(text, &[1, 28, 28], 7) {
        Ok(net) => net,
        Err(e) => panic!("{text:?} should build:\n{e}"),
    }
}

fn params(net: &Sequential) -> Vec<(String, Vec<f32>)> {
    net.named_params()
        .into_iter()
        .map(|(n, p)| (n, p.value.data().to_vec()))
        .collect()
}

/// The message, and the 1-based column of the first caret under the excerpt line.
fn caret(err: &Error) -> (String, usize) {
    let Error::Spec { message, excerpt } = err else {
        panic!("expected a spec error, got {err}");
    };
    let lines: Vec<&str> = excerpt.lines().collect();
    assert_eq!(lines.len(), 2, "excerpt: {excerpt:?}");
    let col = lines[1].chars().position(|c| c == '^').expect("a caret") - 2 + 1;
    (message.clone(), col)
}

#[test]
fn arrow_form_builds_the_seed_network() {
    let net = mnist(SEED_NET);
    assert_eq!(net.num_params(), 289_630);
    assert_eq!(net.output_shape(), &[10]);
    assert_eq!(
        net.spec(),
        "Conv2d(1, 20, kernel_size=(5, 5), stride=(1, 1)) -> ReLU() -> \
         MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False) -> \
         Flatten(start_dim=1, end_dim=-1) -> Linear(in_features=2880, out_features=100, \
         bias=True) -> ReLU() -> Linear(in_features=100, out_features=10, bias=True)"
    );
}

#[test]
fn separators_mix_freely() {
    let want = mnist(SEED_NET);
    for text in [
        "Conv2d(1, 20, 5), ReLU(), MaxPool2d(2), Flatten(), LazyLinear(100), ReLU(), Linear(100, 10)",
        "Conv2d(1, 20, 5)\nReLU\nMaxPool2d(2)\nFlatten\nLazyLinear(100)\nReLU\nLinear(100, 10)\n",
        "Conv2d(1,20,5) → ReLU → MaxPool2d(2) → Flatten → LazyLinear(100) → ReLU → Linear(100,10)",
        "  Conv2d(1, 20, 5) ->\n  ReLU(),\n\tMaxPool2d(2)   Flatten() -> LazyLinear(100),\r\n ReLU Linear(100, 10),",
        "\u{feff}# the book's network\nConv2d(1, 20, 5) -> ReLU() # conv\n-> MaxPool2d(2) -> Flatten() -> LazyLinear(100) -> ReLU() -> Linear(100, 10)",
        "Conv2d(1,20,5)ReLU()MaxPool2d(2)Flatten()LazyLinear(100)ReLU()Linear(100,10)",
    ] {
        let net = mnist(text);
        assert_eq!(net.spec(), want.spec(), "{text:?}");
        assert_eq!(params(&net), params(&want), "{text:?}");
    }
}

#[test]
fn pytorch_print_is_the_same_network() {
    let printed = mnist(PYTORCH_PRINT);
    let written = mnist(
        "Conv2d(1, 20, 5) -> ReLU() -> MaxPool2d(2) -> Flatten() -> LazyLinear(100) -> \
         ReLU() -> Dropout(0.5) -> Linear(100, 10)",
    );
    assert_eq!(printed.spec(), written.spec());
    assert_eq!(printed.num_params(), 289_630);
    assert_eq!(params(&printed), params(&written));
    // Without the Dropout, the same as the seed network, parameters included.
    let no_dropout = PYTORCH_PRINT
        .replace("  (6): Dropout(p=0.5, inplace=False)\n", "")
        .replace("(7):", "(6):");
    let seed = mnist(SEED_NET);
    assert_eq!(mnist(&no_dropout).spec(), seed.spec());
    assert_eq!(params(&mnist(&no_dropout)), params(&seed));
    // CRLF line endings, as pasted on Windows.
    let crlf = PYTORCH_PRINT.replace('\n', "\r\n");
    assert_eq!(mnist(&crlf).spec(), printed.spec());
}

#[test]
fn python_code_is_the_same_network() {
    let text = "model = nn.Sequential(
nn.Conv2d(1, 20, kernel_size=5),  # 20 feature maps
nn.ReLU(inplace=True),
nn.MaxPool2d(kernel_size=2, stride=2),
torch.nn.Flatten(),
nn.LazyLinear(100),
nn.ReLU(),
nn.Linear(in_features=100, out_features=10),
)";
    let net = mnist(text);
    assert_eq!(net.spec(), mnist(SEED_NET).spec());
    assert_eq!(params(&net), params(&mnist(SEED_NET)));
    let one_line = "nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), \
                    nn.Flatten(), nn.LazyLinear(100), nn.ReLU(), nn.Linear(100, 10))";
    assert_eq!(mnist(one_line).spec(), net.spec());
}

#[test]
fn every_layer_round_trips() {
    let text = "Conv2d(3, 8, kernel_size=3, stride=2, padding=1, bias=False)
        -> ReLU(inplace=True)
        -> LazyConv2d(6, (3, 1), padding=(1, 0), padding_mode='zeros')
        -> Tanh()
        -> MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        -> AvgPool2d((2, 3), stride=1, padding=(1, 1), ceil_mode=True, count_include_pad=False)
        -> Sigmoid()
        -> Flatten()
        -> Dropout(p=0.25)
        -> LazyLinear(32, bias=False)
        -> Linear(32, 10)
        -> LogSoftmax(dim=1)
        -> Softmax(dim=-1)";
    let net = build(text, &[3, 16, 16], 3).expect("builds");
    let spec = net.spec();
    for part in [
        "Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)",
        "Conv2d(8, 6, kernel_size=(3, 1), stride=(1, 1), padding=(1, 0))",
        "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True)",
        "AvgPool2d(kernel_size=(2, 3), stride=1, padding=1, ceil_mode=True, count_include_pad=False)",
        "Dropout(p=0.25, inplace=False)",
        "Linear(in_features=180, out_features=32, bias=False)",
        "LogSoftmax(dim=1) -> Softmax(dim=-1)",
    ] {
        assert!(spec.contains(part), "{part} not in {spec}");
    }
    let again = build(&spec, &[3, 16, 16], 3).expect("the spec reads back");
    assert_eq!(again.spec(), spec);
    assert_eq!(params(&again), params(&net));
    let names: Vec<String> = parse(&spec).unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names.len(), 13);
    // Unbuilt layers (lazy ones print their placeholder 0) read back too.
    for layer in to_layers(text).unwrap() {
        let repr = layer.repr();
        let back = to_layers(&repr).unwrap_or_else(|e| panic!("{repr}: {e}"));
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].repr(), repr);
    }
}

#[test]
fn lazy_prints_are_lazy_layers() {
    let printed = "LazyConv2d(0, 20, kernel_size=(5, 5), stride=(1, 1)) -> ReLU -> \
                   MaxPool2d(2) -> Flatten -> LazyLinear(in_features=0, out_features=100, \
                   bias=True) -> ReLU -> Linear(100, 10)";
    let layers = to_layers(printed).unwrap();
    assert_eq!(
        layers[0].repr(),
        "LazyConv2d(0, 20, kernel_size=(5, 5), stride=(1, 1))"
    );
    assert_eq!(
        layers[4].repr(),
        "LazyLinear(in_features=0, out_features=100, bias=True)"
    );
    assert_eq!(mnist(printed).spec(), mnist(SEED_NET).spec());
    // PyTorch's real signatures, and the placeholder by keyword.
    for text in [
        "LazyConv2d(20, 5)",
        "LazyConv2d(20, kernel_size=5)",
        "LazyConv2d(in_channels=0, out_channels=20, kernel_size=5)",
        "nn.LazyConv2d(0, 20, 5)",
    ] {
        assert_eq!(
            to_layers(text).unwrap()[0].repr(),
            "LazyConv2d(0, 20, kernel_size=(5, 5), stride=(1, 1))",
            "{text}"
        );
    }
    for text in [
        "LazyLinear(100)",
        "LazyLinear(0, 100)",
        "LazyLinear(out_features=100)",
    ] {
        assert_eq!(
            to_layers(text).unwrap()[0].repr(),
            "LazyLinear(in_features=0, out_features=100, bias=True)"
        );
    }
}

#[test]
fn parse_reports_values_and_spans() {
    let text = "nn.Conv2d(1, 20, kernel_size=(5, 5), padding='same', bias=False) → ReLU, \
                Dropout(.5)\nFlatten(end_dim=-1) Foo(1e-3, -2.5, None, [1, 2], (3,), (4), ())";
    let calls = parse(text).unwrap();
    let names: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Conv2d", "ReLU", "Dropout", "Flatten", "Foo"]);
    assert_eq!(calls[0].args, [Value::Int(1), Value::Int(20)]);
    assert_eq!(
        calls[0].kwargs,
        [
            (
                "kernel_size".to_string(),
                Value::Tuple(vec![Value::Int(5), Value::Int(5)])
            ),
            ("padding".to_string(), Value::Str("same".into())),
            ("bias".to_string(), Value::Bool(false)),
        ]
    );
    assert_eq!(
        &text[calls[0].span.clone()],
        "nn.Conv2d(1, 20, kernel_size=(5, 5), padding='same', bias=False)"
    );
    assert_eq!(&text[calls[1].span.clone()], "ReLU");
    assert!(calls[1].args.is_empty() && calls[1].kwargs.is_empty());
    assert_eq!(calls[2].args, [Value::Float(0.5)]);
    assert_eq!(calls[3].kwargs, [("end_dim".to_string(), Value::Int(-1))]);
    assert_eq!(
        calls[4].args,
        [
            Value::Float(1e-3),
            Value::Float(-2.5),
            Value::None,
            Value::Tuple(vec![Value::Int(1), Value::Int(2)]),
            Value::Tuple(vec![Value::Int(3)]),
            Value::Int(4),
            Value::Tuple(vec![]),
        ]
    );
    assert_eq!(
        &text[calls[4].span.clone()],
        "Foo(1e-3, -2.5, None, [1, 2], (3,), (4), ())"
    );
    let shown: Vec<String> = calls[4].args.iter().map(|v| v.to_string()).collect();
    assert_eq!(
        shown,
        ["0.001", "-2.5", "None", "(1, 2)", "(3,)", "4", "()"]
    );
}

#[test]
fn integer_arithmetic_is_evaluated_as_python_does() {
    let calls = parse(
        "Foo(2+3*4, (2+3)*4, 7//2, -7//2, 7//-2, -(2*3), 10-2-3, 1 - -1, 2*-3, \
         (1+1, 2 * 2), [6//3], 16*16*16, 9223372036854775807 - 1)",
    )
    .unwrap();
    let ints = |v: &[i64]| v.iter().map(|&i| Value::Int(i)).collect::<Vec<_>>();
    assert_eq!(
        calls[0].args[..9],
        ints(&[14, 20, 3, -4, -4, -6, 5, 2, -6])[..]
    );
    assert_eq!(
        calls[0].args[9..],
        [
            Value::Tuple(ints(&[2, 4])),
            Value::Tuple(ints(&[2])),
            Value::Int(4096),
            Value::Int(i64::MAX - 1),
        ]
    );
    // What a PyTorch user pastes builds the network written with the numbers.
    let pasted = mnist(
        "nn.Conv2d(1, 32, kernel_size=3, padding=3//2) -> nn.ReLU() -> nn.MaxPool2d(2) \
         -> nn.Flatten() -> nn.Linear(32 * 14 * 14, 64 + 64) -> nn.Linear(128, 10 - 0)",
    );
    let plain = mnist(
        "Conv2d(1, 32, 3, padding=1) -> ReLU() -> MaxPool2d(2) -> Flatten() -> \
         Linear(6272, 128) -> Linear(128, 10)",
    );
    assert_eq!(pasted.spec(), plain.spec());
    assert_eq!(params(&pasted), params(&plain));
}

#[test]
fn arithmetic_that_gives_no_int_names_the_layer_and_argument() {
    // (spec, words the message must contain, column of the caret, carets)
    #[rustfmt::skip]
    let table: &[(&str, &[&str], usize, usize)] = &[
        ("Linear(16*0.5, 10)", &["Linear: in_features = 16*0.5: ", "ints only"], 8, 6),
        ("Conv2d(1, 32, 3, padding=3/2)", &["Conv2d: padding = 3/2: ", "write '//'"], 26, 3),
        ("Linear(10, out_features=4//0)", &["Linear: out_features = 4//0: division by zero"], 25, 4),
        ("Linear(4294967296 * 4294967296, 10)", &["Linear: in_features = 4294967296 * 4294967296 does not fit in a 64-bit integer"], 8, 23),
        ("Conv2d(1, 20, 5, padding=same*2)", &["Conv2d: padding = same*2: same is not a number"], 26, 6),
        ("Conv2d(1, 20, (2, 2)*2)", &["Conv2d: kernel_size = (2, 2)*2: (2, 2) is not a number"], 15, 8),
        ("Dropout(p=0.1*2)", &["Dropout: p = 0.1*2: ", "ints only"], 11, 5),
        ("Linear(-(True), 3)", &["Linear: in_features = -(True): (True) is not a number"], 8, 7),
        ("Linear(16*, 10)", &["expected a value after '*', found ','"], 11, 1),
        ("Linear(2**10, 10)", &["'**' (power) is not supported"], 9, 2),
        ("Linear(1, 2 + )", &["expected a value after '+', found ')'"], 15, 1),
    ];
    let rows: Vec<_> = table.iter().map(|&(t, w, col, _)| (t, w, 1, col)).collect();
    let errors = assert_errors(&rows);
    for ((text, .., width), err) in table.iter().zip(errors) {
        let carets = err.to_string().matches('^').count();
        assert_eq!(
            carets, *width,
            "{text:?}: the carets span the expression:\n{err}"
        );
    }
    // parse names the argument by position or keyword.
    let err = parse("Foo(1, 16*0.5)").unwrap_err();
    assert!(caret(&err).0.contains("Foo argument 2 = 16*0.5: "), "{err}");
    let err = parse("Foo(x=2/3)").unwrap_err();
    assert!(
        caret(&err).0.contains("Foo: x = 2/3: '/' is true division"),
        "{err}"
    );
}

#[test]
fn padding_valid_and_same() {
    let repr = |t: &str| to_layers(t).unwrap()[0].repr();
    // torch 2.15 prints these strings unquoted, and reads them back.
    assert_eq!(
        repr("Conv2d(1, 4, (3, 5), padding='same')"),
        "Conv2d(1, 4, kernel_size=(3, 5), stride=(1, 1), padding=same)"
    );
    assert_eq!(
        repr("Conv2d(1, 4, 3, padding=same)"),
        repr("Conv2d(1, 4, 3, padding='same')")
    );
    assert_eq!(
        repr("Conv2d(1, 4, 3, padding=\"valid\")"),
        "Conv2d(1, 4, kernel_size=(3, 3), stride=(1, 1), padding=valid)"
    );
    let net = build("Conv2d(1, 4, 5, padding='same')", &[1, 28, 28], 0).unwrap();
    assert_eq!(net.output_shape(), &[4, 28, 28]);
    // Even kernels: d·(k−1) odd, the extra row and column at the bottom and right.
    for (spec, shape) in [
        ("Conv2d(1, 4, 4, padding='same')", &[4, 7, 9]),
        (
            "Conv2d(1, 4, (2, 3), padding='same', dilation=(3, 2))",
            &[4, 7, 9],
        ),
        ("Conv2d(1, 4, 3, padding='valid', dilation=2)", &[4, 3, 5]),
    ] {
        let net = build(spec, &[1, 7, 9], 0).unwrap();
        assert_eq!(net.output_shape(), shape, "{spec}");
    }
}

/// torch 2.15's reprs, checked by printing the same layers.
#[test]
fn dilation_and_groups_print_as_pytorch() {
    let repr = |t: &str| to_layers(t).unwrap()[0].repr();
    for (spec, torch) in [
        (
            "Conv2d(4, 8, 3, padding='same', dilation=2, groups=2, bias=False)",
            "Conv2d(4, 8, kernel_size=(3, 3), stride=(1, 1), padding=same, dilation=(2, 2), \
             groups=2, bias=False)",
        ),
        (
            "Conv2d(4, 8, 3, dilation=(1, 2))",
            "Conv2d(4, 8, kernel_size=(3, 3), stride=(1, 1), dilation=(1, 2))",
        ),
        (
            "Conv2d(4, 4, 3, groups=4)",
            "Conv2d(4, 4, kernel_size=(3, 3), stride=(1, 1), groups=4)",
        ),
        (
            "Conv2d(4, 8, 3, padding=0, dilation=1, groups=1, padding_mode='zeros')",
            "Conv2d(4, 8, kernel_size=(3, 3), stride=(1, 1))",
        ),
        (
            "LazyConv2d(8, 3, padding='same', dilation=2)",
            "LazyConv2d(0, 8, kernel_size=(3, 3), stride=(1, 1), padding=same, dilation=(2, 2))",
        ),
    ] {
        assert_eq!(repr(spec), torch);
        assert_eq!(repr(torch), torch, "reads back");
    }
}

#[test]
fn malformed_specs_point_at_the_mistake() {
    // (spec, words the message must contain, line, column of the caret)
    #[rustfmt::skip]
    let table: &[(&str, &[&str], usize, usize)] = &[
        ("Conv2d(1, 20, 5 -> ReLU()", &["expected ')' to close 'Conv2d(' opened at column 1"], 1, 17),
        ("Conv2d(1, 20, 5", &["expected ')'", "'Conv2d('", "spec ends"], 1, 16),
        ("Conv2d(1, 20, 5\nReLU()", &["expected ')'", "opened at line 1, column 1"], 2, 1),
        ("Conv2d(1, 20, (5, 5)", &["expected ')'", "'Conv2d('"], 1, 21),
        ("Conv2d(1, 20, (5, 5]", &["expected ')' to close '(' opened at column 15"], 1, 20),
        ("Conv2d(1, 20 5)", &["expected ','"], 1, 14),
        ("Conv2d(1,, 20, 5)", &["unexpected ','", "missing"], 1, 10),
        ("Conv2d(1, 20, 5))", &["unmatched ')'"], 1, 17),
        ("ReLU(\n", &["expected ')' to close 'ReLU('", "spec ends"], 1, 6),
        ("", &["names no layers", "e.g. Conv2d(1, 20, 5)"], 1, 1),
        ("  \n  # only a comment\n", &["names no layers"], 2, 3),
        ("Sequential()", &["names no layers"], 1, 1),
        ("-> ReLU()", &["no layer before"], 1, 1),
        ("ReLU() ->", &["no layer after"], 1, 8),
        ("ReLU() -> -> Flatten()", &["second '->'", "layer missing"], 1, 11),
        ("Sequential(ReLU() ->)", &["no layer after"], 1, 19),
        ("ReLU() = 3", &["expected a layer", "'='"], 1, 8),
        ("5", &["expected a layer", "'5'"], 1, 1),
        ("ReLU()\u{7}", &["control character U+0007"], 1, 7),
        ("Conv2d(1, 20, 5) ; ReLU()", &["unexpected character ';'"], 1, 18),
        ("Conv2d(1, 20, 5).stride(2)", &["unexpected '.'", "stride=2"], 1, 17),
        ("Conv2d(1, 20, 5) => ReLU", &["'=>' is not an arrow"], 1, 18),
        ("ReLU() > Tanh()", &["unexpected '>'", "->"], 1, 8),
        ("Conv2d(1, 20, 5) — ReLU", &["dash"], 1, 18),
        ("Dropout(p=‘0.5’)", &["curly quote"], 1, 11),
        ("Dropout(p='0.5)", &["not closed"], 1, 11),
        ("Conv2d(1, 20, 5x5)", &["'5x5' is not a number", "(5, 5)"], 1, 15),
        ("Conv2d(1, 20, -)", &["number after '-'"], 1, 15),
        ("Conv2d(1, 20, kernel_size=)", &["value after 'kernel_size='"], 1, 27),
        ("Conv2d(stride=2, 1, 20, 5)", &["positional argument follows keyword argument"], 1, 18),
        ("Conv2D(1, 20, 5)", &["unknown layer 'Conv2D'", "did you mean Conv2d?", "LogSoftmax"], 1, 1),
        ("Conv2d(1, 20, 5) -> Relu()", &["'Relu'", "did you mean ReLU?"], 1, 21),
        ("Maxpool2d(2)", &["did you mean MaxPool2d?"], 1, 1),
        ("nn.Conv2d(1, 20, 5) nn.Linaer(2, 3)", &["did you mean Linear?"], 1, 21),
        ("F.relu", &["did you mean ReLU?"], 1, 1),
        ("Whatever()", &["unknown layer 'Whatever'", "Conv2d, LazyConv2d"], 1, 1),
        ("LayerNorm(20)", &["nn.LayerNorm is not implemented"], 1, 1),
        ("torch.Conv2d(1, 2, 3)", &["unknown prefix", "nn.Conv2d"], 1, 1),
        ("Conv2d(1, 20, kernel_size=True)", &["Conv2d", "kernel_size", "int", "True"], 1, 27),
        ("Dropout(p='a')", &["Dropout", "p expects a float", "'a'"], 1, 11),
        ("Linear(10, 5, bias='yes')", &["Linear", "bias expects True or False"], 1, 20),
        ("Linear(10, 5, bias=true)", &["True or False", "Python spells"], 1, 20),
        ("Conv2d(1, 20, 5, stride=1, stride=2)", &["Conv2d", "multiple values", "'stride'"], 1, 28),
        ("Conv2d(1, 20, 5, 1, stride=2)", &["multiple values for argument 'stride'"], 1, 21),
        ("Conv2d(1, 20)", &["Conv2d", "missing", "'kernel_size'", "Conv2d(in_channels, out_channels, kernel_size, stride=1"], 1, 1),
        ("Linear(1, 2, True, 4)", &["Linear takes at most 3", "4 were given"], 1, 20),
        ("Sigmoid(1)", &["Sigmoid takes no arguments, but 1 was given"], 1, 9),
        ("LazyLinear(0, 10, True, 4)", &["LazyLinear takes at most 2 positional arguments (out_features, bias), but 3 were given"], 1, 25),
        ("Conv2d(1, 20, 5, kernal_size=3)", &["no argument 'kernal_size'", "did you mean 'kernel_size'?"], 1, 18),
        ("Dropout(rate=0.5)", &["Dropout has no argument 'rate'", "Dropout(p=0.5, inplace=False)"], 1, 9),
        ("Conv2d(1, -20, 5)", &["Conv2d", "out_channels must be at least 1", "-20"], 1, 11),
        ("Conv2d(1, 20, 5, padding=-1)", &["padding must not be negative"], 1, 26),
        ("Conv2d(1, 20, 5, stride=(2, 0))", &["stride must be at least 1, got 0"], 1, 29),
        ("Linear(99999999999999999999, 10)", &["Linear", "in_features", "does not fit"], 1, 8),
        ("Conv2d(0, 20, 5)", &["in_channels must be at least 1", "LazyConv2d"], 1, 8),
        ("Linear(0, 20)", &["in_features must be at least 1", "LazyLinear"], 1, 8),
        ("LazyLinear(in_features=784, out_features=10)", &["in_features=784", "Linear(784, out_features)"], 1, 24),
        ("LazyConv2d(in_channels=3, out_channels=20, kernel_size=5)", &["Conv2d(3, out_channels, kernel_size)"], 1, 24),
        ("Conv2d(1, 20, (5, 5, 5))", &["kernel_size", "3 values, not 2"], 1, 15),
        ("Conv2d(1, 20, 5, dilation=0)", &["dilation must be at least 1, got 0"], 1, 27),
        ("Conv2d(4, 6, 5, groups=0)", &["groups must be at least 1, got 0"], 1, 24),
        ("Conv2d(1, 20, 5, groups=2)", &["Conv2d: groups=2 does not divide in_channels 1", "must divide both"], 1, 25),
        ("Conv2d(4, 6, 3, groups=4)", &["groups=4 does not divide out_channels 6", "divide both in_channels (4) and out_channels (6)"], 1, 24),
        ("Conv2d(4, 8, 3, groups=3)", &["groups=3 does not divide in_channels 4", "(groups=4 is a depthwise convolution)"], 1, 24),
        ("LazyConv2d(6, 3, groups=4)", &["groups=4 does not divide out_channels 6"], 1, 25),
        ("Conv2d(1, 20, 5, padding_mode='circular')", &["Conv2d: padding_mode='circular' is not implemented in seqnet (only 'zeros')"], 1, 31),
        ("Conv2d(1, 20, 5, padding_mode='reflect')", &["padding_mode='reflect' is not implemented"], 1, 31),
        ("Conv2d(1, 20, 5, padding_mode='mirror')", &["padding_mode expects one of 'zeros'"], 1, 31),
        ("Conv2d(1, 20, 5, stride=2, padding='same')", &["Conv2d: padding='same' needs stride 1", "stride is (2, 2)"], 1, 36),
        ("Conv2d(1, 20, 5, padding='full')", &["padding expects an int, a (height, width) tuple, 'valid' or 'same'"], 1, 26),
        ("MaxPool2d(2, return_indices=True)", &["return_indices=True is not implemented"], 1, 29),
        ("MaxPool2d(2, dilation=(1, 2))", &["dilation=(1, 2) is not implemented"], 1, 23),
        ("AvgPool2d(2, divisor_override=3)", &["divisor_override=3 is not implemented"], 1, 31),
        ("Flatten(start_dim=2)", &["start_dim=2 is not implemented"], 1, 19),
        ("Flatten(1, 2)", &["end_dim=2 is not implemented"], 1, 12),
        ("Dropout(p=1e999)", &["finite"], 1, 11),
        ("Dropout2d(p='a')", &["Dropout2d", "p expects a float", "'a'"], 1, 13),
        ("AdaptiveAvgPool2d(0)", &["AdaptiveAvgPool2d: output_size must be at least 1, got 0"], 1, 19),
        ("AdaptiveAvgPool2d((2, 'a'))", &["AdaptiveAvgPool2d: output_size expects an int", "'a'"], 1, 23),
        ("AdaptiveAvgPool2d((1, 2, 3))", &["output_size", "3 values, not 2"], 1, 19),
        ("AdaptiveMaxPool2d(2, return_indices=True)", &["return_indices=True is not implemented"], 1, 37),
        ("ELU(alpha='x')", &["ELU: alpha expects a float, e.g. 1.0, got 'x'"], 1, 11),
        ("GELU(approximate='fast')", &["GELU: approximate expects 'none' or 'tanh', got 'fast'"], 1, 18),
        ("GELU(approximate=True)", &["GELU: approximate expects 'none' or 'tanh', got True"], 1, 18),
        ("Softmax()", &["Softmax needs dim", "Softmax(dim=1)"], 1, 1),
        ("LogSoftmax(dim=None)", &["LogSoftmax needs dim"], 1, 16),
        ("Softmax(dim=1.0)", &["dim expects an int"], 1, 13),
        ("Sequential(\n  (0): Conv2d(1, 20, 5)\n  (2): ReLU()\n)", &["index (2) is out of order", "(1):", "state_dict"], 3, 4),
        ("(0): ReLU() (0): Tanh()", &["index (0) is out of order"], 1, 14),
        ("Sequential(\n  (conv1): Conv2d(1, 20, 5)\n)", &["named child '(conv1)'", "state_dict"], 2, 4),
        ("Sequential(\n  (0) Conv2d(1, 20, 5)\n)", &["expected ':'"], 2, 7),
        ("Sequential(\n  (0): Conv2d(1, 20, 5)\n", &["expected ')' to close 'Sequential('", "line 1, column 1"], 2, 24),
        ("Sequential(Sequential(ReLU()))", &["nested Sequential"], 1, 12),
        ("Sequential(\n  (0): Sequential(\n    (0): ReLU()\n)\n)", &["nested Sequential"], 2, 8),
        ("nn.Sequential(OrderedDict([('relu', nn.ReLU())]))", &["OrderedDict", "names its children", "state_dict"], 1, 15),
        ("OrderedDict", &["OrderedDict", "names its children"], 1, 1),
        ("x = ReLU()", &["unexpected '='", "nn.Sequential"], 1, 3),
    ];
    assert_errors(table);
}

/// Checks that each spec of `table` (spec, words its error must contain, line and
/// column of the caret) fails in [`to_layers`] so, listing every mismatch at the end;
/// returns the errors, in order.
fn assert_errors(table: &[(&str, &[&str], usize, usize)]) -> Vec<Error> {
    let mut failures = Vec::new();
    let mut errors = Vec::new();
    for &(text, words, line, col) in table {
        let err = match to_layers(text) {
            Ok(_) => {
                failures.push(format!("{text:?} should fail"));
                continue;
            }
            Err(e) => e,
        };
        let (message, caret_col) = caret(&err);
        for w in words {
            if !message.contains(w) {
                failures.push(format!("{text:?}: {w:?} not in {message:?}"));
            }
        }
        let at = format!("spec: line {line}, column {col}: ");
        if !message.starts_with(&at) || caret_col != col {
            failures.push(format!(
                "{text:?}: expected {at:?}, caret column {caret_col}:\n{err}"
            ));
        }
        errors.push(err);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    errors
}

#[test]
fn syntax_errors_come_from_parse_too() {
    assert!(parse("Conv2d(1, 20, 5 -> ReLU()").is_err());
    assert!(parse("").is_err());
    // Unknown names and arguments are for to_layers.
    assert!(parse("Whatever(x=1)").is_ok());
    let err = parse("Foo(99999999999999999999)").unwrap_err();
    assert!(caret(&err).0.contains("does not fit in 64 bits"));
}

#[test]
fn caret_spans_the_offending_text() {
    let err = to_layers("Linear(10, 5, bias='yes')").unwrap_err();
    let Error::Spec { excerpt, .. } = &err else {
        panic!()
    };
    assert_eq!(
        excerpt,
        "  Linear(10, 5, bias='yes')\n                     ^^^^^"
    );
    assert!(err.to_string().contains("\n  Linear(10, 5, bias='yes')\n"));
}

#[test]
fn long_lines_show_a_window() {
    let text = format!(
        "{}Relu() {}",
        "ReLU() ".repeat(2000),
        "Tanh() ".repeat(2000)
    );
    let err = to_layers(&text).unwrap_err();
    let Error::Spec { message, excerpt } = &err else {
        panic!()
    };
    assert!(message.contains("column 14001"), "{message}");
    let lines: Vec<Vec<char>> = excerpt.lines().map(|l| l.chars().collect()).collect();
    assert!(lines[0].len() < 90, "{excerpt}");
    let at = lines[1].iter().position(|&c| c == '^').unwrap();
    let under: String = lines[0][at..at + 6].iter().collect();
    assert_eq!(under, "Relu()");
    assert_eq!(lines[1].iter().filter(|&&c| c == '^').count(), 4);
    // At the start and the end of a long line too.
    for text in [
        format!("Relu {}", "ReLU ".repeat(3000)),
        format!("{}Relu", "ReLU ".repeat(3000)),
    ] {
        let err = to_layers(&text).unwrap_err();
        let Error::Spec { excerpt, .. } = &err else {
            panic!()
        };
        let lines: Vec<Vec<char>> = excerpt.lines().map(|l| l.chars().collect()).collect();
        assert!(lines[0].len() < 90);
        let at = lines[1].iter().position(|&c| c == '^').unwrap();
        let under: String = lines[0][at..at + 4].iter().collect();
        assert_eq!(under, "Relu");
    }
}

#[test]
fn limits_are_errors() {
    let err = parse(&"ReLU ".repeat(14_000)).unwrap_err();
    assert!(caret(&err).0.contains("at most 65536 bytes"));
    // A multi-byte character straddling the cap.
    let err = parse(&format!("{}→→→", "a".repeat(MAX_SPEC_BYTES - 1))).unwrap_err();
    assert!(caret(&err).0.contains("64 KiB"));

    let ok = "Tanh,".repeat(MAX_LAYERS);
    assert_eq!(to_layers(&ok).unwrap().len(), MAX_LAYERS);
    let err = parse(&"Tanh,".repeat(MAX_LAYERS + 1)).unwrap_err();
    let (message, col) = caret(&err);
    assert!(message.contains("more than 10000 layers"), "{message}");
    assert!(message.contains("column 50001"), "{message}");
    assert!(col < 80);

    let deep = format!("Linear({}1", "(".repeat(40));
    let (message, col) = caret(&parse(&deep).unwrap_err());
    assert!(message.contains("nested more than 32 deep"), "{message}");
    assert_eq!(col, 8 + 32);
}

#[test]
fn pathological_inputs_fail_fast() {
    let n = MAX_SPEC_BYTES;
    let inputs = [
        "(".repeat(n),
        ")".repeat(n),
        "[".repeat(n),
        "Conv2d(".repeat(n / 7),
        "'".repeat(n),
        "\"".repeat(n),
        "1".repeat(n),
        "a".repeat(n),
        "a.".repeat(n / 2),
        "nn.".repeat(n / 4) + "ReLU",
        "->".repeat(n / 2),
        "ReLU(x=".repeat(n / 7),
        "Conv2d(1, 20, 5, ".to_string() + &"stride=1, ".repeat((n - 20) / 10),
        "Softmax(".to_string() + &"1,".repeat((n - 10) / 2) + ")",
        "(0): ".repeat(n / 5),
        "ReLU\u{0}".repeat(n / 5),
        "é".repeat(n / 2),
    ];
    let start = std::time::Instant::now();
    for text in &inputs {
        assert!(text.len() <= n);
        let err = match to_layers(text) {
            Ok(_) => panic!("{:?}… should fail", &text[..20]),
            Err(e) => e,
        };
        let Error::Spec { message, excerpt } = &err else {
            panic!()
        };
        assert!(message.len() < 600, "{message}");
        assert!(excerpt.chars().count() < 200, "{excerpt}");
    }
    // Linear work: well under a second even unoptimised.
    assert!(start.elapsed().as_secs() < 5);
}

#[test]
fn mutated_specs_never_panic() {
    let seeds = [
        PYTORCH_PRINT,
        SEED_NET,
        "nn.Sequential(nn.Conv2d(3, 8, (3, 5), stride=2, padding='same'), nn.Dropout(p=.5))",
    ];
    let alphabet: Vec<char> = "()[],:=-> →'\"#.0123456789eE_abcXYZ\n\t\u{7}é\u{2192}TrueNone"
        .chars()
        .collect();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rand = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for round in 0..3000 {
        let mut chars: Vec<char> = seeds[round % seeds.len()].chars().collect();
        for _ in 0..1 + rand(4) {
            let at = rand(chars.len() + 1);
            match rand(3) {
                0 if at < chars.len() => {
                    chars.remove(at);
                }
                1 if at < chars.len() => chars[at] = alphabet[rand(alphabet.len())],
                _ => chars.insert(at, alphabet[rand(alphabet.len())]),
            }
        }
        let text: String = chars.into_iter().collect();
        let _ = parse(&text);
        match build(&text, &[3, 28, 28], 0) {
            Ok(net) => {
                let spec = net.spec();
                let again = build(&spec, &[3, 28, 28], 0).expect("a built spec reads back");
                assert_eq!(again.spec(), spec);
            }
            Err(Error::Spec { message, excerpt }) => {
                assert!(message.starts_with("spec: line "), "{message}");
                assert!(excerpt.contains('^'));
            }
            Err(_) => {} // a shape error from Sequential
        }
    }
}

#[test]
fn suggestions_use_edit_distance() {
    assert_eq!(edit_distance("linaer", "linear"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("conv", "conv2d"), 2);
    assert_eq!(
        closest("Conv2D", LAYER_NAMES.iter().copied()),
        Some("Conv2d")
    );
    assert_eq!(
        closest("Softmx", LAYER_NAMES.iter().copied()),
        Some("Softmax")
    );
    assert_eq!(closest("Transformer", LAYER_NAMES.iter().copied()), None);
}
