"""Deployment: TensorFlow Lite files (float, float16, dynamic-range and full-integer int8)
and frozen inference graphs, as research/slim's users ship its nets.

    model = kslim.models.create_model("mobilenet_v1", weights="slim")
    kslim.export.to_tflite(model, "mobilenet_v1.tflite")                    # float32
    kslim.export.to_tflite(model, "mobilenet_v1_int8.tflite", quantize="int8",
                           representative_data=images)                      # calibrated
    kslim.export.TFLiteRunner("mobilenet_v1.tflite").predict(["cat.jpg"])
    kslim.export.to_frozen_graph(model, "mobilenet_v1_frozen.pb")            # TF1 GraphDef

The same from the command line: `kslim export --format=tflite|frozen_graph
--output_file=...` and `kslim predict --tflite FILE IMAGE...`. SavedModels are written by
`kslim.training.export_saved_model` (`kslim export`'s default format).
"""

from kslim.export._frozen import frozen_graph_def, output_node_names, to_frozen_graph
from kslim.export._tflite import (QUANTIZE_MODES, TFLiteRunner, calibration_images,
                                  convert_tflite, read_metadata, to_tflite)

__all__ = [
    "QUANTIZE_MODES",
    "TFLiteRunner",
    "calibration_images",
    "convert_tflite",
    "frozen_graph_def",
    "output_node_names",
    "read_metadata",
    "to_frozen_graph",
    "to_tflite",
]
