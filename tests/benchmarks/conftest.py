from tests.benchmarks import fixtures as _fx

bench_bundle, bench_data, bench_onnx = _fx.bench_bundle, _fx.bench_data, _fx.bench_onnx
bench_onnx_int8, bench_zip, digits_run = _fx.bench_onnx_int8, _fx.bench_zip, _fx.digits_run
